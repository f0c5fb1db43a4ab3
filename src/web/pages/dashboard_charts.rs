//! The dashboard's charts: SVG drawn on the server (render::chart) and the same numbers as a
//! table for screen readers and for anyone who wants exact figures.

use time::Date;

use crate::error::Result;
use crate::render::chart::{self, Series};
use crate::render::format;
use crate::reports::series::{self, Columns, Window};
use crate::web::http::extract::CurrentUser;
use crate::web::http::state::AppState;

/// A chart and its data table.
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    /// SVG markup built by `render::chart` (every text in it escaped there).
    pub svg: String,
    /// (label, colour class) per series, for the legend; empty for one-series charts.
    pub legend: Vec<(String, String)>,
    pub headers: Vec<String>,
    pub rows: Vec<(String, Vec<String>)>,
    pub empty: bool,
}

pub struct Charts {
    pub days: i64,
    pub choices: Vec<i64>,
    pub per_day: String,
    pub list: Vec<Chart>,
}

fn stacked(id: &'static str, title: String, labels: &[String], columns: Columns) -> Chart {
    let series: Vec<Series> = columns
        .series
        .iter()
        .map(|(name, values)| Series {
            name: name.clone(),
            values: values.clone(),
        })
        .collect();
    let svg = chart::stacked_bars(id, &title, labels, &series);
    let legend = columns
        .series
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.clone(), format!("series-{}", i % chart::PALETTE)))
        .collect();
    let mut headers = vec!["Period".to_string()];
    headers.extend(columns.series.iter().map(|(name, _)| name.clone()));
    headers.push("Total".into());
    let rows = labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let values: Vec<u64> = columns.series.iter().map(|(_, v)| v[i]).collect();
            let mut cells: Vec<String> = values.iter().map(|&v| format::count(v as i64)).collect();
            cells.push(format::count(values.iter().sum::<u64>() as i64));
            (label.clone(), cells)
        })
        .collect();
    Chart {
        id,
        title,
        svg,
        legend,
        headers,
        rows,
        empty: columns.total() == 0,
    }
}

pub async fn load(
    state: &AppState,
    user: &CurrentUser,
    window: Window,
    today: Date,
) -> Result<Charts> {
    let labels = window.labels(today);
    let per_day = if window.bucket_days() == 1 {
        "day"
    } else {
        "week"
    };
    let tz = &user.timezone;
    let archived =
        series::archived_per_account(&state.pool, &user.grants, tz, window, today).await?;
    let verdicts = series::verdicts(&state.pool, tz, window, today).await?;
    let stored = series::stored_bytes(&state.pool, tz, window, today).await?;
    let size = |v: u64| format::size(v);
    let storage = Chart {
        id: "chart-storage",
        title: format!("Storage used, last {} days", window.days),
        svg: chart::area_line(
            "chart-storage",
            &format!("Storage used, last {} days", window.days),
            &labels,
            &stored,
            &size,
        ),
        legend: Vec::new(),
        headers: vec!["Period".into(), "Stored (compressed, deduplicated)".into()],
        rows: labels
            .iter()
            .zip(&stored)
            .map(|(l, &v)| (l.clone(), vec![format::size(v)]))
            .collect(),
        empty: stored.iter().all(|&v| v == 0),
    };
    Ok(Charts {
        days: window.days,
        choices: Window::CHOICES.to_vec(),
        per_day: per_day.into(),
        list: vec![
            stacked(
                "chart-archived",
                format!("Messages archived per {per_day}, by account"),
                &labels,
                archived,
            ),
            storage,
            stacked(
                "chart-verdicts",
                format!("Scan verdicts per {per_day}"),
                &labels,
                verdicts,
            ),
        ],
    })
}
