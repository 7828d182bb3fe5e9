//! The worker, as seen from the page: one gRPC-Web client on the page's own
//! origin, and gRPC statuses turned into sentences a person can act on.

use lens_proto::v1::evidence_lens_client::EvidenceLensClient;
use tonic::{Code, Status};
use tonic_web_wasm_client::Client;

pub fn worker() -> EvidenceLensClient<Client> {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    EvidenceLensClient::new(Client::new(origin))
}

/// A status as a message for the page.
pub fn readable(status: &Status) -> String {
    let detail = status.message();
    match status.code() {
        Code::InvalidArgument => format!("The request was not accepted: {detail}"),
        Code::ResourceExhausted | Code::Unavailable => {
            format!("The worker is busy or unreachable, try again: {detail}")
        }
        Code::Cancelled => "The explanation was cancelled.".to_string(),
        _ => format!("The worker failed ({:?}): {detail}", status.code()),
    }
}
