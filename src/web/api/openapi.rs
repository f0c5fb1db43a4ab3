//! The OpenAPI 3.1 description of the API, generated from the handlers' annotations and served
//! at `/api/v1/openapi.json`. A test checks that it lists exactly the routes the router has.

use axum::response::Response;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, admin, exports, json, messages, problem};
use crate::web::http::routes::Area;

/// The route of the document itself.
pub fn area() -> Area {
    Area::new().get("/api/v1/openapi.json", document)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Daygle Mail Archiver API",
        description = "Search, read and export archived mail; accounts, quarantine and the audit \
            log. Authenticate with a personal access token: `Authorization: Bearer dga_…`. \
            Errors are application/problem+json.",
    ),
    paths(
        messages::search,
        messages::metadata,
        messages::raw,
        messages::attachment,
        messages::thread,
        accounts::list,
        accounts::ledger,
        exports::create,
        exports::status,
        exports::download_file,
        admin::quarantine_list,
        admin::quarantine_release,
        admin::quarantine_delete,
        admin::audit_log,
        document,
    ),
    components(schemas(problem::Problem)),
    modifiers(&BearerToken),
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("dga_…")
                        .description(Some(
                            "A personal access token; scopes mail:read, mail:export, admin.",
                        ))
                        .build(),
                ),
            );
        }
    }
}

/// This document (no token needed).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn document() -> Response {
    json(&ApiDoc::openapi())
}
