//! Reading one parameter of a URL query string, as every route and the
//! socket.io handshake need it (`token`, `userId`, `sid`, `peek`, `upTo`).

/// The raw value of the first `key=value` pair named `key`, if any.
pub fn param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
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
}
