//! The OpenAPI document, generated from the handlers' annotations, and the offline docs UI.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error;

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Corridor", description = "Cross-border payments on stablecoin rails: rate-locked quotes and a durable payment state machine. Amounts are integers in minor units; rates are exact decimals."),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "quotes", description = "Rate-locked quotes"),
        (name = "payments", description = "Payments and their state machine"),
        (name = "corridors", description = "Corridors and rates"),
        (name = "webhooks", description = "Signed webhooks to merchants (Standard Webhooks)"),
        (name = "providers", description = "Signed settlement reports from onramp/offramp providers"),
        (name = "admin", description = "Operator routes (admin key)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// The served document: [`ApiDoc`] with the operations the router registered (`api::router`),
/// then the shared responses, the input rules and the links written into it — after the
/// paths are in, since each of those works on the operations.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for m in [
        &Bearer as &dyn Modify,
        &CommonResponses,
        &Constraints,
        &Links,
    ] {
        m.modify(&mut doc);
    }
    doc
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The responses every route can give besides its own, added to each operation in one place
/// (they come from the shared layers — authentication, the rate limiter, the body extractor,
/// the edge guards, the request timeout — not from the handler), and the headers every
/// response carries. A client generated from the document then knows every status it can
/// get.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Operation, ParameterIn};
        use utoipa::openapi::{RefOr, Required};
        let error = || {
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build()
        };
        let header = |ty: utoipa::openapi::schema::Type, description: &str| {
            utoipa::openapi::HeaderBuilder::new()
                .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(ty)))
                .description(Some(description))
                .build()
        };
        let string_header = |d: &str| header(utoipa::openapi::schema::Type::String, d);
        let integer_header = |d: &str| header(utoipa::openapi::schema::Type::Integer, d);
        let add = |op: &mut Operation, code: &str, description: &str| {
            let entry = op
                .responses
                .responses
                .entry(code.to_owned())
                .or_insert_with(|| {
                    RefOr::T(
                        utoipa::openapi::ResponseBuilder::new()
                            .description(description)
                            .content("application/json", error())
                            .build(),
                    )
                });
            if let RefOr::T(resp) = entry
                && matches!(code, "429" | "503")
            {
                resp.headers.insert(
                    "Retry-After".into(),
                    RefOr::T(integer_header("Seconds to wait before retrying")),
                );
            }
        };
        for (path, op) in operations(openapi) {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let params = op.parameters.iter().flatten().filter_map(|p| match p {
                RefOr::T(p) => Some(p),
                RefOr::Ref(_) => None,
            });
            let (mut has_path, mut has_query) = (false, false);
            for p in params {
                has_path |= matches!(p.parameter_in, ParameterIn::Path);
                has_query |= matches!(p.parameter_in, ParameterIn::Query)
                    && matches!(p.required, Required::True | Required::False);
            }
            // A body that may be left out (a reconciliation run's window) says so.
            if op.operation_id.as_deref() == Some("start_reconciliation")
                && let Some(RefOr::T(body)) = op.request_body.as_mut()
            {
                body.required = Some(Required::False);
            }
            let has_body = op.request_body.is_some();
            let is_v1 = path.starts_with("/v1/");
            if is_v1 && (has_path || has_query || has_body) {
                add(op, "400", "The request is invalid (error format)");
            }
            if secured || path.starts_with("/v1/provider-webhooks/") {
                add(op, "401", "Missing or invalid credentials (error format)");
            }
            if secured {
                add(op, "403", "The key may not call this route (error format)");
                add(
                    op,
                    "429",
                    "Too many requests: the key's rate limit, or too many unknown keys from this address (error format)",
                );
            }
            if has_path {
                add(op, "404", "Not found (error format)");
            }
            if has_body {
                add(
                    op,
                    "408",
                    "The request body did not arrive in time (error format)",
                );
                add(op, "413", "Body over 64 KiB (error format)");
                add(
                    op,
                    "415",
                    "Not `application/json`, or a `Content-Encoding` other than identity (error format)",
                );
            }
            if is_v1 || path == "/readyz" {
                add(
                    op,
                    "503",
                    "Temporarily unavailable: retry later (error format)",
                );
            }
            let idempotent = op.parameters.iter().flatten().any(
                |p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case("Idempotency-Key")),
            );
            // Every answer names its request, for support and for the logs.
            for resp in op.responses.responses.values_mut() {
                if let RefOr::T(resp) = resp {
                    if idempotent {
                        resp.headers.insert(
                            "Idempotent-Replayed".into(),
                            RefOr::T(string_header(
                                "`true` when this is the stored answer of an earlier request with the same Idempotency-Key",
                            )),
                        );
                    }
                    resp.headers.insert(
                        "X-Request-Id".into(),
                        RefOr::T(string_header(
                            "The request's id (the client's, when it sent a valid one)",
                        )),
                    );
                }
            }
        }
    }
}

/// Every operation of the document with its path.
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> Vec<(String, &mut utoipa::openapi::path::Operation)> {
    openapi
        .paths
        .paths
        .iter_mut()
        .flat_map(|(path, item)| {
            [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ]
            .into_iter()
            .flatten()
            .map(move |op| (path.clone(), op))
        })
        .collect()
}

/// An operation, the status of its answer, and the links from that answer by name.
type Flow = (
    &'static str,
    &'static str,
    Vec<(&'static str, utoipa::openapi::link::Link)>,
);

/// Response links of the stateful flows — a quote is paid with and read back by its id, a
/// payment read and cancelled by its id — so a client (or a stateful fuzzer) knows which
/// value of one answer feeds which next call.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        let by_id = |op: &str, param: &str, field: &str, description: &str| {
            LinkBuilder::new()
                .operation_id(op)
                .parameter(param, format!("$response.body#/{field}"))
                .description(description)
                .build()
        };
        let flows: [Flow; 2] = [
            (
                "create_quote",
                "200",
                vec![
                    (
                        "PayWithQuote",
                        LinkBuilder::new()
                            .operation_id("create_payment")
                            .request_body(Some(serde_json::json!({
                                "quote_id": "$response.body#/quote_id"
                            })))
                            .description("Pay with the quote (its rate and fees are locked).")
                            .build(),
                    ),
                    (
                        "GetQuote",
                        by_id("get_quote", "quote_id", "quote_id", "Read the quote back."),
                    ),
                ],
            ),
            (
                "create_payment",
                "202",
                vec![
                    (
                        "GetPayment",
                        by_id(
                            "get_payment",
                            "payment_id",
                            "payment_id",
                            "Follow the payment.",
                        ),
                    ),
                    (
                        "CancelPayment",
                        by_id(
                            "cancel_payment",
                            "payment_id",
                            "payment_id",
                            "Cancel it while it is still PENDING.",
                        ),
                    ),
                ],
            ),
        ];
        for (_, op) in operations(openapi) {
            for (id, status, links) in &flows {
                if op.operation_id.as_deref() != Some(id) {
                    continue;
                }
                if let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) {
                    for (name, link) in links {
                        response
                            .links
                            .insert((*name).to_owned(), RefOr::T(link.clone()));
                    }
                }
            }
        }
    }
}

/// An id's shape as a pattern (see `domain::ids`).
fn id_pattern(prefix: &str) -> String {
    format!(
        "^{prefix}[0-9a-fA-F]{{8}}-?[0-9a-fA-F]{{4}}-?[0-9a-fA-F]{{4}}-?[0-9a-fA-F]{{4}}-?[0-9a-fA-F]{{12}}$"
    )
}

/// Text without control characters and not blank (accounts, names).
const TEXT: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";
/// An ISO 4217 code.
const CURRENCY: &str = "^[A-Z]{3}$";

/// The input rules the handlers enforce, written into the document's schemas so that a
/// client (or a generator, or a fuzzer) knows them: id shapes, currency codes, required
/// fields, lengths, ranges, enumerations. `Option` fields are optional in Rust only so that
/// a missing one gets a precise error; here they are required and not nullable.
struct Constraints;

impl Modify for Constraints {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{Schema, Type};
        use utoipa::openapi::{ObjectBuilder, RefOr, Required};
        let text = |pattern: String, max: Option<usize>| {
            Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(pattern))
                    .min_length(Some(1))
                    .max_length(max)
                    .build(),
            )
        };
        let states: Vec<String> = crate::domain::PaymentState::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        for (path, op) in operations(openapi) {
            for p in op.parameters.iter_mut().flatten() {
                let RefOr::T(p) = p else { continue };
                let schema = match (p.name.as_str(), path.as_str()) {
                    ("starting_after", "/v1/webhook-deliveries") => {
                        text(id_pattern("whd_"), Some(40))
                    }
                    ("starting_after", "/v1/admin/jobs/dead") => text(
                        format!("{}|^[a-z][a-z-]{{0,63}}$", id_pattern("")),
                        Some(64),
                    ),
                    ("starting_after", "/v1/sandbox/transfers") => text(TEXT.into(), Some(255)),
                    ("payment_id" | "starting_after", _) => text(id_pattern("pay_"), Some(40)),
                    ("quote_id", _) => text(id_pattern("quote_"), Some(42)),
                    ("merchant_id", _) => text(id_pattern("mer_"), Some(40)),
                    ("id", p) if p.starts_with("/v1/webhook-endpoints/") => {
                        text(id_pattern("we_"), Some(40))
                    }
                    ("id", p) if p.starts_with("/v1/webhook-deliveries/") => {
                        text(id_pattern("whd_"), Some(40))
                    }
                    ("id", p) if p.starts_with("/v1/admin/payments/") => {
                        text(id_pattern("pay_"), Some(40))
                    }
                    ("id", p) if p.starts_with("/v1/admin/jobs/") => text(
                        format!("{}|^[a-z][a-z-]{{0,63}}$", id_pattern("")),
                        Some(64),
                    ),
                    ("provider", _) => text("^[A-Za-z0-9._-]{1,64}$".into(), Some(64)),
                    ("Idempotency-Key", _) => text("^[\\x20-\\x7E]{1,255}$".into(), Some(255)),
                    ("from" | "to", _) => text(CURRENCY.into(), Some(3)),
                    ("status", _) => Schema::Object(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(states.clone()))
                            .build(),
                    ),
                    ("limit", _) => Schema::Object(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(1))
                            .maximum(Some(100))
                            .build(),
                    ),
                    _ => continue,
                };
                p.schema = Some(RefOr::T(schema));
                if path == "/v1/rates" {
                    p.required = Required::True;
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let event_types = super::webhooks::event_types();
        let mut refine = |name: &str, required: &[&str], props: Vec<(&str, Schema)>| {
            let Some(RefOr::T(Schema::Object(obj))) = components.schemas.get_mut(name) else {
                return;
            };
            obj.required = required.iter().map(|r| (*r).to_owned()).collect();
            for (prop, schema) in props {
                let description = match obj.properties.get(prop) {
                    Some(RefOr::T(Schema::Object(o))) => o.description.clone(),
                    _ => None,
                };
                let schema = match schema {
                    Schema::Object(mut o) => {
                        o.description = description;
                        Schema::Object(o)
                    }
                    other => other,
                };
                obj.properties.insert(prop.to_owned(), RefOr::T(schema));
            }
        };
        let amount = || {
            Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(1))
                    .build(),
            )
        };
        let currency = || text(CURRENCY.into(), Some(3));
        let account = || text(TEXT.into(), Some(255));
        refine(
            "CreateQuote",
            &["from_currency", "to_currency", "amount"],
            vec![
                ("from_currency", currency()),
                ("to_currency", currency()),
                ("amount", amount()),
            ],
        );
        refine(
            "CreatePayment",
            &["source_account", "destination_account"],
            vec![
                ("quote_id", text(id_pattern("quote_"), Some(42))),
                ("source_account", account()),
                ("destination_account", account()),
                ("amount", amount()),
                ("currency", currency()),
                ("payout_currency", currency()),
                (
                    "metadata",
                    Schema::Object(
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .max_properties(Some(20))
                            .property_names(Some(
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .min_length(Some(1))
                                    .max_length(Some(40)),
                            ))
                            .additional_properties(Some(
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .max_length(Some(500)),
                            ))
                            .build(),
                    ),
                ),
            ],
        );
        refine(
            "CreateEndpoint",
            &["url"],
            vec![
                (
                    "url",
                    Schema::Object(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
                            .pattern(Some("^https://[^\\s]+$"))
                            .max_length(Some(crate::egress::MAX_URL_LEN))
                            .build(),
                    ),
                ),
                (
                    "events",
                    Schema::Array(
                        utoipa::openapi::ArrayBuilder::new()
                            .items(
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .enum_values(Some(event_types.clone())),
                            )
                            .build(),
                    ),
                ),
            ],
        );
        refine(
            "CreateMerchant",
            &["name"],
            vec![("name", text(TEXT.into(), Some(100)))],
        );
        refine(
            "PinBody",
            &["rate"],
            vec![(
                "rate",
                Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::Number)
                        .exclusive_minimum(Some(0))
                        .build(),
                ),
            )],
        );
        refine(
            "ProviderWebhook",
            &["event_type", "reference", "payment_id"],
            vec![
                (
                    "event_type",
                    Schema::Object(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some([
                                "onramp.completed",
                                "onramp.failed",
                                "offramp.completed",
                                "offramp.failed",
                            ]))
                            .build(),
                    ),
                ),
                ("reference", text(TEXT.into(), Some(255))),
                ("payment_id", text(id_pattern("pay_"), Some(40))),
            ],
        );
        // Response-side enumerations: what a client can switch on exhaustively.
        use strum::IntoEnumIterator;
        let codes: Vec<String> = super::error::Code::iter()
            .map(|c| c.parts().1.to_owned())
            .collect();
        let leg_statuses: Vec<String> = crate::domain::LegStatus::iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let failures: Vec<String> = crate::domain::payment::FailureCode::iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        for (schema, prop, values) in [
            ("ErrorBody", "error", &codes),
            ("PaymentView", "status", &states),
            ("HistoryView", "to", &states),
            ("LegView", "status", &leg_statuses),
            ("FailureView", "code", &failures),
        ] {
            let Some(RefOr::T(Schema::Object(obj))) = components.schemas.get_mut(schema) else {
                continue;
            };
            if let Some(RefOr::T(Schema::Object(p))) = obj.properties.get_mut(prop) {
                p.enum_values = Some(values.iter().map(|v| v.clone().into()).collect());
            }
        }
    }
}
