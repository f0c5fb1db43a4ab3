//! The API's human-readable reference, `docs/API.md`, written from the same OpenAPI document
//! the server serves, so the prose cannot drift from the routes: a test fails when the
//! committed file differs from what this module makes of the current code.

use std::fmt::Write as _;

use serde_json::Value;
use utoipa::OpenApi;

use super::openapi::ApiDoc;

/// Where the reference lives in the repository.
pub const PATH: &str = "docs/API.md";

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The reference as Markdown: every operation with its scopes, parameters and answers, then
/// every schema with its fields.
pub fn markdown() -> String {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    let mut out = String::new();
    let title = text(&doc["info"]["title"]);
    let _ = writeln!(out, "# {title}: reference\n");
    let _ = writeln!(
        out,
        "Written from the OpenAPI {} document the server serves at `/api/v1/openapi.json` \
         (`cargo test` checks this file against the code; after changing the API, regenerate \
         it with `DAYGLE_WRITE_API_REFERENCE=1 cargo test --lib api_reference`). The README's \
         \"JSON API\" section explains tokens and scopes and has `curl` examples.\n",
        text(&doc["openapi"])
    );
    let _ = writeln!(out, "{}\n", text(&doc["info"]["description"]));
    let _ = writeln!(
        out,
        "Every operation that needs a token may also answer 401 (no valid token) and 429 (the \
         token's rate limit; wait as `Retry-After` says). Errors carry a \
         [Problem](#problem) body.\n"
    );

    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    let _ = writeln!(out, "## Operations\n");
    for (path, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                operation(&mut out, method, path, op);
            }
        }
    }

    let schemas = doc["components"]["schemas"].as_object().unwrap_or(&empty);
    if !schemas.is_empty() {
        let _ = writeln!(out, "## Schemas\n");
        for (name, schema) in schemas {
            schema_section(&mut out, name, schema);
        }
    }
    out
}

fn operation(out: &mut String, method: &str, path: &str, op: &Value) {
    let _ = writeln!(out, "### `{} {path}`\n", method.to_uppercase());
    for key in ["summary", "description"] {
        let t = text(&op[key]);
        if !t.is_empty() {
            let _ = writeln!(out, "{t}\n");
        }
    }
    let scopes: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|req| req.as_object())
        .flat_map(|req| req.values())
        .filter_map(|v| v.as_array())
        .flatten()
        .map(|s| format!("`{}`", text(s)))
        .collect();
    if scopes.is_empty() {
        let _ = writeln!(out, "No token needed.\n");
    } else {
        let _ = writeln!(out, "Token scope: {}.\n", scopes.join(", "));
    }

    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "| parameter | in | required | type | description |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for p in params {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                text(&p["name"]),
                text(&p["in"]),
                if p["required"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                type_of(&p["schema"]),
                cell(&text(&p["description"])),
            );
        }
        let _ = writeln!(out);
    }
    if let Some(body) = op["requestBody"]["content"].as_object() {
        for (media, content) in body {
            let _ = writeln!(
                out,
                "Request body: `{media}`, {}.\n",
                type_of(&content["schema"])
            );
        }
    }

    if let Some(responses) = op["responses"].as_object() {
        let _ = writeln!(out, "| answer | content | description |");
        let _ = writeln!(out, "|---|---|---|");
        for (status, response) in responses {
            let content = response["content"]
                .as_object()
                .map(|c| {
                    c.iter()
                        .map(|(media, v)| format!("`{media}` {}", type_of(&v["schema"])))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {status} | {} | {} |",
                cell(&content),
                cell(&answer_meaning(status, &text(&response["description"])))
            );
        }
        let _ = writeln!(out);
    }
}

fn schema_section(out: &mut String, name: &str, schema: &Value) {
    let _ = writeln!(out, "### {name}\n");
    let description = text(&schema["description"]);
    if !description.is_empty() {
        let _ = writeln!(out, "{description}\n");
    }
    let Some(properties) = schema["properties"].as_object() else {
        let _ = writeln!(out, "{}\n", type_of(schema));
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let _ = writeln!(out, "| field | type | required | description |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (field, prop) in properties {
        let _ = writeln!(
            out,
            "| `{field}` | {} | {} | {} |",
            type_of(prop),
            if required.contains(&field.as_str()) {
                "yes"
            } else {
                "no"
            },
            cell(&text(&prop["description"]))
        );
    }
    let _ = writeln!(out);
}

/// A short type name: a referenced schema by name, arrays as `[T]`, nullable as `T or null`.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("[{name}](#{})", name.to_lowercase());
    }
    if let Some(variants) = schema["oneOf"]
        .as_array()
        .or_else(|| schema["anyOf"].as_array())
    {
        return variants
            .iter()
            .map(type_of)
            .collect::<Vec<_>>()
            .join(" or ");
    }
    let base = match &schema["type"] {
        Value::String(t) => single_type(t, schema),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(|t| single_type(t, schema))
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    };
    match schema["format"].as_str() {
        Some(format) if !base.contains('[') => format!("{base} ({format})"),
        _ => base,
    }
}

fn single_type(t: &str, schema: &Value) -> String {
    if t == "array" {
        format!("[{}]", type_of(&schema["items"]))
    } else {
        t.to_owned()
    }
}

/// The answer's own description, or what the status means in this API when it has none.
fn answer_meaning(status: &str, described: &str) -> String {
    if !described.is_empty() {
        return described.to_owned();
    }
    match status {
        "200" => "Success.",
        "202" => "Accepted: the work runs in the background.",
        "403" => "The token or its user may not do this (or not with this message).",
        "404" => "No such item, or one this token may not see.",
        "409" => "The item is not in a state that allows this.",
        "422" => "The input is not valid; `detail` says why.",
        _ => "",
    }
    .to_owned()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().trim().to_owned()
}

/// Text safe inside one Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_reference_in_docs_is_written_from_the_current_code() {
        let generated = markdown();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PATH);
        if std::env::var_os("DAYGLE_WRITE_API_REFERENCE").is_some() {
            std::fs::write(&path, &generated).expect("write docs/API.md");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{PATH} is out of date with the API: regenerate it with \
             DAYGLE_WRITE_API_REFERENCE=1 cargo test --lib api_reference"
        );
        for op in [
            "GET /api/v1/messages`",
            "POST /api/v1/exports`",
            "GET /api/v1/audit`",
        ] {
            assert!(generated.contains(op), "the reference lacks {op}");
        }
    }
}
