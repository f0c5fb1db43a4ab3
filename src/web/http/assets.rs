//! CSS, JS and images compiled into the binary: the UI never needs a CDN or a static dir.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::routes::Area;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "css/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../static/css/app.css"),
    },
    Asset {
        path: "js/theme.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../static/js/theme.js"),
    },
    Asset {
        path: "js/live.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../static/js/live.js"),
    },
    Asset {
        path: "js/nav.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../static/js/nav.js"),
    },
    Asset {
        path: "img/remote-image-blocked.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../static/img/remote-image-blocked.svg"),
    },
    Asset {
        path: "img/logo.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../static/img/logo.svg"),
    },
];

/// Changes with every build so browsers can cache assets for a long time.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The routes of the embedded static files.
pub fn area() -> Area {
    Area::new()
        .get("/static/{*path}", serve)
        .get("/favicon.ico", || serve(Path("img/logo.svg".to_string())))
}

async fn serve(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                ),
            ],
            asset.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
