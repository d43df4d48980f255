//! Merchants' webhook endpoints: create, delete, rotate the secret, send an event again.

use secrecy::SecretString;

use super::{Error, Result, Service};
use crate::domain::task::Task;
use crate::signing::Secret;
use crate::store::jobs::NewJob;
use crate::store::unit::Write;
use crate::store::webhooks::{self, DELIVERY_JOB_ATTEMPTS, Endpoint};
use crate::store::{Rejected, UnitOfWork};

/// Endpoints one merchant may register.
pub const MAX_ENDPOINTS: usize = 20;
/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;

impl Service {
    /// Registers an endpoint (URL and event types already validated).
    pub async fn create_endpoint(
        &self,
        merchant_id: &str,
        url: String,
        events: Vec<String>,
    ) -> Result<Endpoint> {
        if webhooks::list_endpoints(&self.store, merchant_id)
            .await?
            .len()
            >= MAX_ENDPOINTS
        {
            return Err(Error::invalid(
                "url",
                format!("at most {MAX_ENDPOINTS} webhook endpoints per merchant"),
            ));
        }
        let now = self.clock.now();
        let endpoint = Endpoint {
            endpoint_id: format!("we_{}", crate::idgen::v7()),
            merchant_id: merchant_id.to_owned(),
            url,
            events,
            secret: SecretString::from(Secret::generate()),
            previous_secret: None,
            previous_secret_until: None,
            disabled_at: None,
            created_at: now,
        };
        let mut unit = UnitOfWork::at(now);
        unit.push(Write::InsertEndpoint(endpoint.clone()));
        self.commit(unit)
            .await?
            .map_err(|r| Error::Unavailable(r.to_string()))?;
        tracing::info!(endpoint_id = %endpoint.endpoint_id, "webhook endpoint created");
        Ok(endpoint)
    }

    /// Deletes one of the merchant's endpoints.
    pub async fn delete_endpoint(&self, merchant_id: &str, endpoint_id: &str) -> Result<()> {
        let mut unit = UnitOfWork::at(self.clock.now());
        unit.push(Write::DeleteEndpoint {
            merchant_id: merchant_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        });
        match self.commit(unit).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::NotFound("webhook endpoint")),
        }
    }

    /// Issues a new secret; the old one keeps signing for [`ROTATION_OVERLAP_MS`].
    pub async fn rotate_endpoint_secret(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
    ) -> Result<String> {
        let secret = Secret::generate();
        let now = self.clock.now();
        let mut unit = UnitOfWork::at(now);
        unit.push(Write::RotateEndpointSecret {
            merchant_id: merchant_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            secret: secret.clone(),
            overlap_until: now.plus_millis(ROTATION_OVERLAP_MS),
        });
        match self.commit(unit).await? {
            Ok(()) => Ok(secret),
            Err(_) => Err(Error::NotFound("webhook endpoint")),
        }
    }

    /// Sends the event of one of the merchant's deliveries to its endpoint again, now, under
    /// the same `webhook-id`. Returns `(event_id, endpoint_id)`.
    pub async fn redeliver(
        &self,
        merchant_id: &str,
        delivery_id: &str,
    ) -> Result<(String, String)> {
        let d = webhooks::find_delivery(&self.store, merchant_id, delivery_id)
            .await?
            .ok_or(Error::NotFound("webhook delivery"))?;
        let endpoint = webhooks::get_endpoint(&self.store, &d.endpoint_id).await?;
        if endpoint.is_none_or(|e| e.disabled_at.is_some()) {
            return Err(Error::InvalidState(
                "the endpoint was deleted or disabled".into(),
            ));
        }
        let event = webhooks::get_event(&self.store, &d.event_id)
            .await?
            .ok_or(Error::NotFound("event"))?;
        let now = self.clock.now();
        let mut unit = UnitOfWork::at(now);
        unit.push(Write::Enqueue(NewJob::new(
            Task::DeliverWebhook {
                event_id: event.event_id.clone(),
                endpoint_id: d.endpoint_id.clone(),
                attempt: 0,
            },
            event.payment_id.clone(),
            now,
            DELIVERY_JOB_ATTEMPTS,
        )));
        self.commit(unit)
            .await?
            .map_err(|r: Rejected| Error::Unavailable(r.to_string()))?;
        Ok((event.event_id, d.endpoint_id))
    }
}
