//! `/settings`: the runtime settings (SMTP with a test message, sync and quarantine defaults,
//! session limits, retention schedule) and the alert triggers. Parse, call `settings::store` /
//! `notify::triggers`, render; a refused form comes back with what was typed and each problem
//! beside its field.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::config::{Problem, Settings};
use crate::error::{Error, Result};
use crate::notify::{Trigger, TriggerConfig, mailer, triggers};
use crate::settings::{FIELDS, Kind, store};
use crate::web::http::extract::{CsrfForm, CurrentUser, Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn area() -> Area {
    Area::new()
        .get("/settings", page)
        .post("/settings", save)
        .post("/settings/alerts", save_triggers)
        .post("/settings/test-email", test_email)
}

struct FieldView {
    key: &'static str,
    /// Form id: the key with `-` for `.`.
    id: String,
    label: &'static str,
    help: &'static str,
    input: &'static str,
    choices: &'static [&'static str],
    value: String,
    checked: bool,
    /// Where a locked value comes from; empty when it can be changed here.
    locked: String,
    /// "built-in default" or "changed by … on …".
    source: String,
    error: String,
}

struct GroupView {
    title: &'static str,
    id: &'static str,
    fields: Vec<FieldView>,
}

struct TriggerView {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    enabled: bool,
    threshold: String,
    send_email: bool,
    recipients: String,
    error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings/page.html")]
struct SettingsPage {
    page: PageContext,
    groups: Vec<GroupView>,
    triggers: Vec<TriggerView>,
    notice: String,
    problems: Vec<String>,
    trigger_problems: Vec<String>,
    test_to: String,
    test_error: String,
}

/// What the form showed or submitted: typed values win over the settings in force.
struct Draft<'a> {
    typed: Option<&'a BTreeMap<String, String>>,
    problems: &'a [Problem],
}

fn group_id(title: &str) -> &'static str {
    match title {
        crate::settings::GROUP_SMTP => "smtp",
        crate::settings::GROUP_SYNC => "archiving",
        crate::settings::GROUP_OIDC => "oidc",
        _ => "sessions",
    }
}

async fn groups(state: &AppState, user: &CurrentUser, draft: &Draft<'_>) -> Result<Vec<GroupView>> {
    let current = state.live.get();
    let stored = store::stored(&state.pool, &state.keys.sealing).await?;
    let mut groups: Vec<GroupView> = Vec::new();
    for f in FIELDS {
        let typed = draft.typed.and_then(|t| t.get(f.key));
        let value = match (typed, f.kind) {
            (_, Kind::Secret) => String::new(),
            (Some(v), _) => v.clone(),
            (None, _) => f.read(&current),
        };
        let locked = state
            .live
            .base()
            .origins
            .get(f.key)
            .map(|o| format!("Set by {o}"))
            .unwrap_or_default();
        let source = match stored.iter().find(|s| s.key == f.key) {
            _ if !locked.is_empty() => String::new(),
            Some(s) => format!(
                "Changed{} on {}",
                if s.updated_by.is_empty() {
                    String::new()
                } else {
                    format!(" by {}", s.updated_by)
                },
                user.format_time(s.updated_at)
            ),
            None => "Built-in default".into(),
        };
        let view = FieldView {
            key: f.key,
            id: f.key.replace('.', "-"),
            label: f.label,
            help: f.help,
            input: match f.kind {
                Kind::Bool => "checkbox",
                Kind::Number => "number",
                Kind::Text => "text",
                Kind::Choice(_) => "select",
                Kind::Secret => "password",
            },
            choices: match f.kind {
                Kind::Choice(c) => c,
                _ => &[],
            },
            checked: matches!(value.as_str(), "true" | "on"),
            value,
            locked,
            source: if f.is_secret() && stored.iter().any(|s| s.key == f.key) {
                format!("{source}; a password is stored")
            } else if f.is_secret() && !current.smtp.password.is_empty() {
                format!("{source}; a password is set")
            } else {
                source
            },
            error: draft
                .problems
                .iter()
                .filter(|p| p.key == f.key)
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        };
        match groups.iter_mut().find(|g| g.title == f.group) {
            Some(g) => g.fields.push(view),
            None => groups.push(GroupView {
                title: f.group,
                id: group_id(f.group),
                fields: vec![view],
            }),
        }
    }
    Ok(groups)
}

fn trigger_views(
    configs: &[TriggerConfig],
    typed: Option<&BTreeMap<String, String>>,
    problems: &[Problem],
) -> Vec<TriggerView> {
    configs
        .iter()
        .map(|c| {
            let key = c.trigger.key();
            let get = |field: &str| typed.and_then(|t| t.get(&format!("{key}.{field}")));
            TriggerView {
                key,
                label: c.trigger.label(),
                unit: c.trigger.threshold_unit().unwrap_or(""),
                enabled: typed.map_or(c.enabled, |_| get("enabled").is_some_and(|v| v == "on")),
                threshold: get("threshold")
                    .cloned()
                    .unwrap_or_else(|| c.threshold.to_string()),
                send_email: typed.map_or(c.send_email, |_| {
                    get("send_email").is_some_and(|v| v == "on")
                }),
                recipients: get("recipients")
                    .cloned()
                    .unwrap_or_else(|| c.recipients.join(", ")),
                error: problems
                    .iter()
                    .filter(|p| p.key.starts_with(&format!("{key}.")))
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct Done {
    #[serde(default)]
    done: String,
}

async fn render(
    state: &AppState,
    user: &CurrentUser,
    draft: Draft<'_>,
    trigger_draft: Draft<'_>,
    notice: String,
    test: (String, String),
) -> Result<SettingsPage> {
    let configs = triggers::load_all(&state.pool).await?;
    let label_of = |p: &Problem| {
        crate::settings::field(&p.key)
            .map(|f| f.label.to_string())
            .unwrap_or_else(|| p.key.clone())
    };
    Ok(SettingsPage {
        page: PageContext::for_user("Settings", "/settings", user),
        groups: groups(state, user, &draft).await?,
        triggers: trigger_views(&configs, trigger_draft.typed, trigger_draft.problems),
        notice,
        problems: draft
            .problems
            .iter()
            .map(|p| format!("{}: {}", label_of(p), p.message))
            .collect(),
        trigger_problems: trigger_draft
            .problems
            .iter()
            .map(|p| {
                let (trigger, _) = p.key.split_once('.').unwrap_or((&p.key, ""));
                let label = Trigger::parse(trigger).map_or(trigger, |t| t.label());
                format!("{label}: {}", p.message)
            })
            .collect(),
        test_to: if test.0.is_empty() {
            user.email.clone()
        } else {
            test.0
        },
        test_error: test.1,
    })
}

const NO_DRAFT: Draft<'static> = Draft {
    typed: None,
    problems: &[],
};

async fn page(
    State(state): State<AppState>,
    user: Require<perm::ManageSettings>,
    Query(done): Query<Done>,
) -> Result<SettingsPage> {
    let notice = match done.done.as_str() {
        "saved" => "Settings saved. They apply now; no restart is needed.",
        "unchanged" => "Nothing changed.",
        "alerts" => "Alert triggers saved. The next check (within a minute) uses them.",
        "test-sent" => "Test message sent. Check the inbox (and the spam folder).",
        _ => "",
    };
    render(
        &state,
        &user,
        NO_DRAFT,
        NO_DRAFT,
        notice.into(),
        Default::default(),
    )
    .await
}

fn form_map(fields: Vec<(String, String)>) -> BTreeMap<String, String> {
    fields
        .into_iter()
        .filter(|(k, _)| k != "csrf_token")
        .collect()
}

async fn save(
    State(state): State<AppState>,
    user: Require<perm::ManageSettings>,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response> {
    let form = form_map(fields);
    match store::save(
        &state.pool,
        &state.keys.sealing,
        &state.live,
        &user.actor,
        &form,
    )
    .await
    {
        Ok(saved) if saved.changed.is_empty() => {
            Ok(Redirect::to("/settings?done=unchanged").into_response())
        }
        Ok(_) => Ok(Redirect::to("/settings?done=saved").into_response()),
        Err(Error::Config(problems)) => {
            let draft = Draft {
                typed: Some(&form),
                problems: &problems.0,
            };
            let page = render(
                &state,
                &user,
                draft,
                NO_DRAFT,
                String::new(),
                Default::default(),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e),
    }
}

/// Reads the triggers' form; a threshold that is not a number is a problem beside it.
fn parse_triggers(
    form: &BTreeMap<String, String>,
    current: &[TriggerConfig],
) -> (Vec<TriggerConfig>, Vec<Problem>) {
    let mut problems = Vec::new();
    let configs = current
        .iter()
        .map(|c| {
            let key = c.trigger.key();
            let get = |field: &str| form.get(&format!("{key}.{field}"));
            let threshold = match get("threshold") {
                None => c.threshold,
                Some(t) => t.trim().parse().unwrap_or_else(|_| {
                    problems.push(Problem {
                        key: format!("{key}.threshold"),
                        message: format!("`{}` is not a whole number", t.trim()),
                    });
                    c.threshold
                }),
            };
            TriggerConfig {
                trigger: c.trigger,
                enabled: get("enabled").is_some_and(|v| v == "on"),
                threshold,
                send_email: get("send_email").is_some_and(|v| v == "on"),
                recipients: get("recipients")
                    .map(|r| crate::config::split_list(r))
                    .unwrap_or_default(),
            }
        })
        .collect();
    (configs, problems)
}

async fn save_triggers(
    State(state): State<AppState>,
    user: Require<perm::ManageSettings>,
    CsrfForm(fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response> {
    let form = form_map(fields);
    let current = triggers::load_all(&state.pool).await?;
    let (configs, mut problems) = parse_triggers(&form, &current);
    if problems.is_empty() {
        match triggers::update(&state.pool, &user.actor, &configs).await {
            Ok(0) => return Ok(Redirect::to("/settings?done=unchanged").into_response()),
            Ok(_) => return Ok(Redirect::to("/settings?done=alerts#alerts").into_response()),
            Err(Error::Config(p)) => problems = p.0,
            Err(e) => return Err(e),
        }
    }
    let draft = Draft {
        typed: Some(&form),
        problems: &problems,
    };
    let page = render(
        &state,
        &user,
        NO_DRAFT,
        draft,
        String::new(),
        Default::default(),
    )
    .await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    to: String,
}

async fn test_email(
    State(state): State<AppState>,
    user: Require<perm::ManageSettings>,
    CsrfForm(form): CsrfForm<TestForm>,
) -> Result<Response> {
    let live: std::sync::Arc<Settings> = state.live.get();
    match mailer::send_test(&state.pool, &user.actor, &live.smtp, &form.to).await? {
        Ok(()) => Ok(Redirect::to("/settings?done=test-sent#smtp").into_response()),
        Err(e) => {
            let page = render(
                &state,
                &user,
                NO_DRAFT,
                NO_DRAFT,
                String::new(),
                (form.to, format!("The test message was not sent: {e}")),
            )
            .await?;
            Ok((StatusCode::BAD_GATEWAY, page).into_response())
        }
    }
}
