//! The OpenAPI document, generated from the handlers' annotations, and the offline docs UI.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, corridors, error, health, metrics, operations, payments, provider_webhooks, quotes,
    webhooks,
};

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Corridor", description = "Cross-border payments on stablecoin rails: rate-locked quotes and a durable payment state machine. Amounts are integers in minor units; rates are exact decimals."),
    paths(
        health::healthz, health::readyz, metrics::render,
        corridors::list, corridors::rate,
        quotes::create, quotes::get,
        payments::create, payments::get, payments::list, payments::cancel,
        webhooks::create, webhooks::list, webhooks::delete, webhooks::rotate_secret,
        webhooks::deliveries, webhooks::retry,
        provider_webhooks::receive,
        admin::create, admin::transfers,
        operations::rotate_key, operations::pin, operations::unpin, operations::pins,
        operations::retry_payment, operations::dead_jobs, operations::redrive, operations::alerts,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&Bearer),
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
