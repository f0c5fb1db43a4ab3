//! Outgoing mail over SMTP (lettre, rustls with ring): implicit TLS, STARTTLS or plain, with
//! optional authentication and an extra trusted CA.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpSettings;

/// Why a message could not be sent, in words for the alert list and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

fn fail(what: &str, e: impl std::fmt::Display) -> SendError {
    SendError(format!("{what}: {e}"))
}

/// A plain-text message to one or more people.
pub struct Outgoing<'a> {
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

#[derive(Clone)]
pub struct Mailer {
    settings: SmtpSettings,
}

impl Mailer {
    /// `None` while `[smtp] enabled` is false.
    pub fn from_settings(settings: &SmtpSettings) -> Option<Self> {
        settings.enabled.then(|| Self {
            settings: settings.clone(),
        })
    }

    fn tls_parameters(&self) -> Result<TlsParameters, SendError> {
        let s = &self.settings;
        let mut builder = TlsParameters::builder(s.host.clone());
        if !s.ca_file.is_empty() {
            let pem = std::fs::read(&s.ca_file).map_err(|e| fail(&s.ca_file, e))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| fail(&s.ca_file, e))?;
            builder = builder.add_root_certificate(cert);
        }
        builder.build_rustls().map_err(|e| fail("TLS set-up", e))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
        let s = &self.settings;
        let tls = match s.tls.as_str() {
            "implicit" => Tls::Wrapper(self.tls_parameters()?),
            "starttls" => Tls::Required(self.tls_parameters()?),
            _ => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(s.timeout_secs)));
        if !s.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                s.username.clone(),
                s.password.expose().to_owned(),
            ));
        }
        Ok(builder.build())
    }

    /// Sends one message to every address in `to` (at least one).
    pub async fn send(&self, mail: &Outgoing<'_>) -> Result<(), SendError> {
        if mail.to.is_empty() {
            return Err(SendError(
                "no recipient: no administrator has an e-mail address".into(),
            ));
        }
        let from: Mailbox = self
            .settings
            .from
            .parse()
            .map_err(|e| fail("smtp.from", e))?;
        let mut builder = Message::builder()
            .from(from)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN);
        for to in mail.to {
            builder = builder.to(to.parse().map_err(|e| fail(to, e))?);
        }
        let message = builder
            .body(mail.body.to_owned())
            .map_err(|e| fail("message", e))?;
        let address = format!("{}:{}", self.settings.host, self.settings.port);
        self.transport()?
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| fail(&format!("SMTP {address}"), e))
    }
}

/// The settings page's "Send test e-mail": one message to `to` with the SMTP settings in force,
/// audited with its outcome. The error says why in words (refused, unreachable, TLS, ...).
pub async fn send_test(
    pool: &sqlx::PgPool,
    actor: &crate::audit::Actor,
    settings: &SmtpSettings,
    to: &str,
) -> crate::error::Result<Result<(), SendError>> {
    let to = to.trim();
    let result = match Mailer::from_settings(settings) {
        None => Err(SendError(
            "sending e-mail is switched off; turn on \"Send e-mail\" and save first".into(),
        )),
        Some(_) if !to.contains('@') => Err(SendError(format!("`{to}` is not an e-mail address"))),
        Some(mailer) => {
            let recipients = [to.to_string()];
            mailer
                .send(&Outgoing {
                    to: &recipients,
                    subject: "Daygle Mail Archiver: test message",
                    body: "This is a test message from the settings page of Daygle Mail Archiver.\n\nAlerts will reach you the same way.\n",
                })
                .await
        }
    };
    crate::audit::record_now(
        pool,
        &crate::audit::AuditEvent::by(actor, crate::audit::Action::SettingsTestEmail).details(
            serde_json::json!({
                "to": to,
                "host": settings.host,
                "sent": result.is_ok(),
                "error": result.as_ref().err().map(|e| e.0.clone()),
            }),
        ),
    )
    .await?;
    Ok(result)
}
