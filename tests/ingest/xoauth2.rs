//! IMAP logins with OAuth2 bearer tokens (SASL XOAUTH2 and OAUTHBEARER) against a real Dovecot
//! whose `oauth2` passdb checks each token at the fake token server's introspection endpoint.

use zeroize::Zeroizing;

use super::support::{messages, timeouts};
use crate::common::dovecot::Dovecot;
use crate::common::microsoft::FakeMicrosoft;
use daygle::ingest::accounts::TlsMode;
use daygle::ingest::imap::sasl::Mechanism;
use daygle::ingest::imap::{self, Credential, Endpoint, ImapError};

fn endpoint(dovecot: &Dovecot, user: &str) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: dovecot.port,
        tls: TlsMode::None,
        username: user.into(),
        pinned_cert_sha256: None,
    }
}

async fn login(
    dovecot: &Dovecot,
    user: &str,
    mechanism: Mechanism,
    token: &str,
) -> Result<imap::Session, ImapError> {
    imap::connect_with(
        &endpoint(dovecot, user),
        Credential::Bearer {
            mechanism,
            token: Zeroizing::new(token.into()),
        },
        timeouts(),
    )
    .await
}

#[tokio::test]
async fn a_valid_token_opens_the_mailbox_and_a_wrong_one_is_refused_in_plain_words() {
    let ms = FakeMicrosoft::start().await;
    let url = ms.introspection_url();
    let dovecot = tokio::task::spawn_blocking(move || Dovecot::start_with_oauth2(&url))
        .await
        .expect("dovecot");
    dovecot.add_user("ann", "ann-pw");
    dovecot.add_user("bob", "bob-pw");
    dovecot.write_messages("ann", "INBOX", &messages("oauth", 3), super::support::OLD);
    ms.world
        .lock()
        .unwrap()
        .imap_tokens
        .insert("ya29.ann-token".into(), "ann".into());

    for mechanism in [Mechanism::XOAuth2, Mechanism::OAuthBearer] {
        let mut session = login(&dovecot, "ann", mechanism, "ya29.ann-token")
            .await
            .unwrap_or_else(|e| panic!("{mechanism:?}: {e}\n{}", dovecot.log()));
        let inbox = session.examine("INBOX").await.expect("examine");
        assert_eq!(inbox.exists, 3, "{mechanism:?}");
        let _ = session.logout().await;

        match login(&dovecot, "ann", mechanism, "ya29.revoked").await {
            Err(ImapError::Auth { username, .. }) => assert_eq!(username, "ann"),
            other => panic!("{mechanism:?}: an unknown token must be refused: {other:?}"),
        }
        // Ann's token does not open Bob's mailbox.
        assert!(
            matches!(
                login(&dovecot, "bob", mechanism, "ya29.ann-token").await,
                Err(ImapError::Auth { .. })
            ),
            "{mechanism:?}: a token is good only for its own user"
        );
    }
    assert!(
        ms.calls("introspect") >= 2,
        "Dovecot asked the token server"
    );
}
