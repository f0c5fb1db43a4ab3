//! SASL mechanisms for OAuth2 bearer tokens over IMAP: Google's and Microsoft's `XOAUTH2`
//! and the standard `OAUTHBEARER` (RFC 7628). The token is never logged; a refused token makes
//! the server send a JSON error challenge, answered with the empty response that ends the
//! exchange (RFC 7628 3.2.3), so the server replies NO and the login fails cleanly.

use zeroize::Zeroizing;

/// Which SASL mechanism carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    XOAuth2,
    OAuthBearer,
}

impl Mechanism {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "xoauth2" => Some(Self::XOAuth2),
            "oauthbearer" => Some(Self::OAuthBearer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::XOAuth2 => "XOAUTH2",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// The client side of one exchange.
pub struct BearerAuth {
    mechanism: Mechanism,
    user: String,
    host: String,
    port: u16,
    token: Zeroizing<String>,
    sent: bool,
}

impl BearerAuth {
    pub fn new(
        mechanism: Mechanism,
        user: &str,
        host: &str,
        port: u16,
        token: Zeroizing<String>,
    ) -> Self {
        Self {
            mechanism,
            user: user.to_string(),
            host: host.to_string(),
            port,
            token,
            sent: false,
        }
    }

    /// The initial client response.
    fn first(&self) -> Zeroizing<Vec<u8>> {
        let text = match self.mechanism {
            Mechanism::XOAuth2 => format!(
                "user={}\x01auth=Bearer {}\x01\x01",
                self.user,
                self.token.as_str()
            ),
            Mechanism::OAuthBearer => format!(
                "n,a={},\x01host={}\x01port={}\x01auth=Bearer {}\x01\x01",
                gs2_name(&self.user),
                self.host,
                self.port,
                self.token.as_str()
            ),
        };
        Zeroizing::new(text.into_bytes())
    }
}

/// A GS2 authzid: `,` and `=` escaped (RFC 5801 4).
fn gs2_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl async_imap::Authenticator for &mut BearerAuth {
    type Response = Zeroizing<Vec<u8>>;

    fn process(&mut self, _challenge: &[u8]) -> Self::Response {
        if self.sent {
            // The server's error challenge: end the exchange so it answers NO.
            return Zeroizing::new(Vec::new());
        }
        self.sent = true;
        self.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::Authenticator;

    #[test]
    fn client_responses_follow_the_mechanisms() {
        let mut x = BearerAuth::new(
            Mechanism::XOAuth2,
            "ann@contoso.example",
            "imap.example",
            993,
            Zeroizing::new("tok".into()),
        );
        assert_eq!(
            (&mut x).process(b"").as_slice(),
            b"user=ann@contoso.example\x01auth=Bearer tok\x01\x01"
        );
        assert!((&mut x).process(b"{\"status\":\"401\"}").is_empty());
        let mut o = BearerAuth::new(
            Mechanism::OAuthBearer,
            "a,b=c",
            "imap.example",
            993,
            Zeroizing::new("tok".into()),
        );
        assert_eq!(
            (&mut o).process(b"").as_slice(),
            b"n,a=a=2Cb=3Dc,\x01host=imap.example\x01port=993\x01auth=Bearer tok\x01\x01"
        );
    }
}
