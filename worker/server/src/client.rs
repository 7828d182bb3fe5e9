//! Who a request comes from. A class in a school reaches the host from one
//! public address, so an address is a room, not a person: each page keeps
//! a random browser id and sends it as the metadata `x-lens-browser`.
//! A client's own limits (runs, live streams) count per browser, or per
//! address for a request without an id (a program, an old page); limits
//! sized for a classroom count per address.

use std::net::{IpAddr, SocketAddr};

use tonic::Request;

use super::status::ServiceError;

/// The gRPC metadata that names the browser.
pub const BROWSER_HEADER: &str = "x-lens-browser";
/// A browser id's length: 8 to 64 of `A-Z a-z 0-9 - _` (the page makes 32
/// hex digits).
pub const BROWSER_ID_LENGTHS: std::ops::RangeInclusive<usize> = 8..=64;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Client {
    /// The address the request came from (`None`: unknown, as in-process).
    pub address: Option<IpAddr>,
    /// The id the page sent, checked.
    pub browser: Option<String>,
}

impl Client {
    pub fn at(address: IpAddr) -> Client {
        Client {
            address: Some(address),
            browser: None,
        }
    }

    pub fn browser_at(address: IpAddr, browser: &str) -> Client {
        Client {
            address: Some(address),
            browser: Some(browser.to_string()),
        }
    }

    /// The key its own limits of kind `what` count under: its browser,
    /// else its address (`None`: not counted). A browser's key has one dot
    /// more than an address's (`w.b.ID`, `w.HEX`), so no id a page sends can
    /// name an address's key.
    pub fn own_key(&self, what: &str) -> Option<String> {
        match &self.browser {
            Some(browser) => Some(format!("{what}.b.{browser}")),
            None => self.address_key(what),
        }
    }

    /// The key its address's limits of kind `what` count under.
    pub fn address_key(&self, what: &str) -> Option<String> {
        self.address.map(|ip| address_key(what, ip))
    }

    /// A name for the queue's order: the browser (`c.b.<id>`), else the
    /// address (`c.<hex>`).
    pub fn name(&self) -> String {
        self.own_key("c").unwrap_or_else(|| "unknown".into())
    }
}

/// A key for `what` about an address: its bytes in hexadecimal (the
/// cluster's keys take letters, digits and a few signs only; IPv6 has
/// colons).
pub fn address_key(what: &str, address: IpAddr) -> String {
    format!("{what}.{}", address_hex(address))
}

/// An address's bytes in hexadecimal.
pub fn address_hex(address: IpAddr) -> String {
    let bytes = match address {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    lens_store::hex(&bytes)
}

/// Checks a browser id as sent.
pub fn check_browser_id(id: &str) -> Result<(), ServiceError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if BROWSER_ID_LENGTHS.contains(&id.len()) && id.bytes().all(allowed) {
        Ok(())
    } else {
        Err(ServiceError::BadBrowserId {
            id: id.chars().take(80).collect(),
        })
    }
}

/// The client of a request: the first address of `X-Forwarded-For` where a
/// proxy is trusted to set it, else the peer's; and its browser id, if sent.
pub fn client_of<T>(
    request: &Request<T>,
    trust_forwarded_for: bool,
) -> Result<Client, ServiceError> {
    let forwarded = || {
        let header = request.metadata().get("x-forwarded-for")?.to_str().ok()?;
        header.split(',').next()?.trim().parse().ok()
    };
    let peer = || {
        request
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .or_else(|| request.remote_addr().map(|a| a.ip()))
    };
    let address = trust_forwarded_for.then(forwarded).flatten().or_else(peer);
    let browser = match request.metadata().get(BROWSER_HEADER) {
        None => None,
        Some(value) => {
            let id = value.to_str().map_err(|_| ServiceError::BadBrowserId {
                id: String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(80)
                    .collect(),
            })?;
            check_browser_id(id)?;
            Some(id.to_string())
        }
    };
    Ok(Client { address, browser })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_counts_apart_from_its_address_and_keys_are_key_value_keys() {
        let ip: IpAddr = "10.0.0.255".parse().unwrap();
        let alone = Client::at(ip);
        let browser = Client::browser_at(ip, "0123456789abcdef");
        assert_eq!(alone.own_key("w").unwrap(), "w.0a0000ff");
        assert_eq!(browser.own_key("w").unwrap(), "w.b.0123456789abcdef");
        assert_eq!(browser.address_key("w"), alone.own_key("w"));
        let v6 = address_key("w", "::1".parse().unwrap());
        assert_eq!(v6.len(), 2 + 32);
        assert!(v6.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        assert_eq!(Client::default().own_key("w"), None);
        // An id cannot name an address's key (IPv6 hex starting with 'b').
        let v6: IpAddr = "b000::1".parse().unwrap();
        let id = &address_key("w", v6)[3..];
        let pretender = Client::browser_at(ip, id);
        assert_ne!(pretender.own_key("w"), Some(address_key("w", v6)));
    }

    #[test]
    fn browser_ids_are_checked() {
        assert!(check_browser_id("0123456789abcdef0123456789abcdef").is_ok());
        assert!(check_browser_id("a-b_c-d_").is_ok());
        for bad in [
            "short",
            "has.dot.in.it",
            "spaces in it",
            &"x".repeat(65),
            "w.b>*x",
        ] {
            let refused = check_browser_id(bad).unwrap_err().to_string();
            assert!(refused.contains("x-lens-browser"), "{refused}");
        }
    }

    #[test]
    fn the_browser_id_comes_from_the_metadata() {
        let mut request = Request::new(());
        assert_eq!(client_of(&request, false).unwrap().browser, None);
        request
            .metadata_mut()
            .insert(BROWSER_HEADER, "0123456789abcdef".parse().unwrap());
        let client = client_of(&request, false).unwrap();
        assert_eq!(client.browser.as_deref(), Some("0123456789abcdef"));
        request
            .metadata_mut()
            .insert(BROWSER_HEADER, "bad id!".parse().unwrap());
        assert!(client_of(&request, false).is_err());
    }
}
