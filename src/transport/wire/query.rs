//! Reading one parameter of a URL query string, as every route and the
//! socket.io handshake need it (`token`, `userId`, `sid`, `peek`, `upTo`).

/// The raw value of the first `key=value` pair named `key`, if any.
pub fn param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// The percent-decoded value (`+` as a space) of the first pair named `key`.
pub fn decoded(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// A socket.io handshake field: from `auth` (a string), else the query (decoded).
pub fn handshake(auth: Option<&serde_json::Value>, query: Option<&str>, name: &str) -> Option<String> {
    let from_auth = auth.and_then(|a| a.get(name)).and_then(serde_json::Value::as_str).map(str::to_owned);
    from_auth.or_else(|| decoded(query, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pair_with_exactly_that_name_wins() {
        let q = Some("EIO=4&tokenx=no&token=abc&token=def&empty=");
        assert_eq!(param(q, "token"), Some("abc"));
        assert_eq!(param(q, "empty"), Some(""));
        assert_eq!(param(q, "EIO"), Some("4"));
        assert_eq!(param(q, "tok"), None);
        assert_eq!(param(None, "token"), None);
    }

    #[test]
    fn decoded_values_undo_percent_encoding() {
        let q = Some("capabilities=location.view%2Cadmin.manage&clientName=Ann+Lee&x=%E2%9C%93");
        assert_eq!(decoded(q, "capabilities").as_deref(), Some("location.view,admin.manage"));
        assert_eq!(decoded(q, "clientName").as_deref(), Some("Ann Lee"));
        assert_eq!(decoded(q, "x").as_deref(), Some("\u{2713}"));
        assert_eq!(decoded(q, "missing"), None);
    }
}
