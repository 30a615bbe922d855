//! What runs at a namespace's CONNECT: the middleware of namespaces that
//! admit by token alone, and what a middleware leaves for the connect
//! handler (which runs after the CONNECT ack).

use serde_json::Value;
use socketioxide::extract::{State, TryData};

use super::{Handle, Namespace, Socket, attach};
use crate::state::AppState;
use crate::transport::conn::admission::{Admitted, Credential, Handshake, admit};
use crate::transport::wire::error::Refused;

/// The connect middleware of a namespace that admits by token alone (with
/// `JWT_SECRET` set), its state built from the admission.
pub async fn token_admission<N: Namespace + for<'a> From<&'a Admitted>>(
    Handle(socket): Handle,
    State(state): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), Refused> {
    let auth = auth.ok();
    let admitted = admit(&state, &Handshake { parts: socket.req_parts(), auth: auth.as_ref() }, Credential::Token)?;
    let ns = N::from(&admitted);
    attach(&socket, &state, admitted, ns);
    Ok(())
}

/// A value the connect middleware leaves for the connect handler (which
/// runs after the CONNECT ack), taken once.
#[derive(Clone)]
struct HandOff<T>(T);

/// Leaves `value` for the connect handler ([`take_hand_off`]).
pub fn hand_off<T: Clone + Send + Sync + 'static>(socket: &Socket, value: T) {
    socket.extensions.insert(HandOff(value));
}

/// What the connect middleware left ([`hand_off`]), if anything.
pub fn take_hand_off<T: Send + Sync + 'static>(socket: &Socket) -> Option<T> {
    socket.extensions.remove::<HandOff<T>>().map(|HandOff(value)| value)
}
