//! The e-mails of the people pages: an invitation and a "forgot password" link. Plain text,
//! one link each, and nothing in them that the recipient did not already know.

use super::mailer::{Mailer, Outgoing, SendError};

/// An invitation to `username`, from `inviter`, with the link and when it stops working.
pub fn invitation(username: &str, inviter: &str, link: &str, expires: &str) -> (String, String) {
    (
        "You are invited to Daygle Mail Archiver".to_string(),
        format!(
            "Hello,\n\n\
             {inviter} has invited you to Daygle Mail Archiver as \"{username}\".\n\n\
             Open this link to choose your password and sign in:\n\n{link}\n\n\
             The link works once, until {expires}. If you did not expect this invitation, \
             ignore this message.\n"
        ),
    )
}

/// A password reset link for `username`, valid for `minutes`.
pub fn password_reset(username: &str, link: &str, minutes: i32) -> (String, String) {
    (
        "Reset your Daygle Mail Archiver password".to_string(),
        format!(
            "Hello,\n\n\
             Someone (hopefully you) asked to reset the password of \"{username}\" on Daygle \
             Mail Archiver.\n\n\
             Open this link to choose a new password:\n\n{link}\n\n\
             The link works once, for {minutes} minutes. Setting a new password signs you \
             out everywhere else; if you use two-factor sign-in you still need your code.\n\n\
             If you did not ask for this, ignore this message: your password stays as it is.\n"
        ),
    )
}

/// Sends one of the messages above to `to`.
pub async fn send(
    mailer: &Mailer,
    to: &str,
    (subject, body): &(String, String),
) -> Result<(), SendError> {
    let to = [to.to_string()];
    mailer
        .send(&Outgoing {
            to: &to,
            subject,
            body,
        })
        .await
}
