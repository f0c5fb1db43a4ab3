//! `/verify`: when the archive was last proven intact — each recorded `verify archive` run
//! (scheduled or from the command line), what it checked, and every problem it kept, with a
//! link to the message. Problems are shown only for archives the viewer may read.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use crate::error::Result;
use crate::render::format;
use crate::verify::runs::{self, Run};
use crate::web::http::extract::{Require, perm};
use crate::web::http::layout::PageContext;
use crate::web::http::routes::Area;
use crate::web::http::state::AppState;

pub fn area() -> Area {
    Area::new().get("/verify", page)
}

struct ProblemLine {
    message_id: Option<i64>,
    place: String,
    kind: &'static str,
    detail: String,
}

struct RunLine {
    id: i64,
    /// passed, problems, failed (error) or running.
    state: &'static str,
    started: String,
    duration: String,
    trigger: &'static str,
    scope: String,
    messages_checked: i64,
    blobs_checked: i64,
    size: String,
    throughput: String,
    problem_count: i64,
    error: String,
    problems: Vec<ProblemLine>,
    /// Problems the viewer may not see (in archives they cannot read).
    hidden: i64,
}

#[derive(Template, WebTemplate)]
#[template(path = "verify/page.html")]
struct VerifyPage {
    page: PageContext,
    latest: Option<RunLine>,
    older: Vec<RunLine>,
    timezone: String,
}

fn line(user: &Require<perm::ViewWorkers>, run: Run) -> RunLine {
    let secs = run
        .finished_at
        .map(|f| (f - run.started_at).as_seconds_f64().max(0.0));
    let state = match (&run.finished_at, &run.error, run.problem_count) {
        (None, _, _) => "running",
        (_, _, n) if n > 0 => "problems",
        (_, Some(_), _) => "failed",
        _ => "passed",
    };
    let mut scope = match run.sample_percent {
        Some(p) => format!("{p}% sample"),
        None => "everything".to_string(),
    };
    if let Some(a) = &run.account {
        scope.push_str(&format!(", account {a}"));
    }
    let problems: Vec<ProblemLine> = run
        .problems
        .0
        .iter()
        .map(|p| ProblemLine {
            message_id: p.message_id,
            place: match (&p.account, &p.folder) {
                (Some(a), Some(f)) => format!("{a} / {f}"),
                (Some(a), None) => a.clone(),
                _ => String::new(),
            },
            kind: p.kind.label(),
            detail: p.detail.clone(),
        })
        .collect();
    let kept = i64::try_from(run.problems.0.len()).unwrap_or(i64::MAX);
    RunLine {
        id: run.id,
        state,
        started: user.format_time(run.started_at),
        duration: secs.map_or("—".into(), |s| format!("{s:.0} s")),
        trigger: if run.trigger == "schedule" {
            "scheduled"
        } else {
            "command line"
        },
        scope,
        messages_checked: run.messages_checked,
        blobs_checked: run.blobs_checked,
        size: format::size(run.bytes_checked.max(0) as u64),
        throughput: match secs {
            Some(s) if s >= 1.0 => format!("{:.0} MB/s", run.bytes_checked as f64 / 1e6 / s),
            _ => "—".into(),
        },
        problem_count: run.problem_count,
        error: run.error.unwrap_or_default(),
        // The run keeps its first 200 problems; of those, the viewer sees their archives' ones.
        hidden: if user.grants == crate::auth::Grants::All {
            0
        } else {
            (run.problem_count.min(200) - kept).max(0)
        },
        problems,
    }
}

async fn page(
    State(state): State<AppState>,
    user: Require<perm::ViewWorkers>,
) -> Result<VerifyPage> {
    let mut lines: Vec<RunLine> = runs::recent_for(&state.pool, &user.grants, 20)
        .await?
        .into_iter()
        .map(|r| line(&user, r))
        .collect();
    let latest = (!lines.is_empty()).then(|| lines.remove(0));
    Ok(VerifyPage {
        page: PageContext::for_user("Verification", "/verify", &user),
        latest,
        older: lines,
        timezone: user.timezone.clone(),
    })
}
