//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it: the leader renews the lease every few seconds; a candidate takes it over once it has
//! gone unrenewed for its whole duration. Every write carries the lease's
//! `resourceVersion`, so two candidates racing for an expired lease cannot both win.
//!
//! A leader that shuts down gives the lease up (no holder, as client-go's
//! `ReleaseOnCancel` does), so a standby takes over within one retry rather than a whole
//! lease duration. There is no fencing: a leader that stalls past the lease duration may
//! act beside its successor for a moment. The controller tolerates that: its writes are idempotent
//! (creating a log that exists, writing the same status twice).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a lease lasts without renewal, and how often the leader renews it.
#[derive(Clone, Debug)]
pub struct LeaseTiming {
    /// A lease unrenewed for this long may be taken over.
    pub duration: Duration,
    /// How often the leader renews, and a candidate retries.
    pub retry: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        // client-go's defaults are 15 s and 2 s.
        LeaseTiming {
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// One candidate for the lease `name` in the namespace of `api`.
#[derive(Clone)]
pub struct Candidate {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
}

/// Whether a try left this candidate holding the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Leading,
    Following,
}

impl Candidate {
    /// A candidate called `identity` (unique per process, e.g. the pod name).
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: LeaseTiming) -> Self {
        Candidate {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
        }
    }

    /// Waits until this candidate leads, then keeps the lease renewed in a background task
    /// until the lease is lost ([`Leadership::lost`]) or released; after a loss, `lead`
    /// may be called again to stand for election anew.
    pub async fn lead(&self) -> Leadership {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Outcome::Leading) => break,
                Ok(Outcome::Following) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election: cannot read or write the lease")
                }
            }
            tokio::time::sleep(self.timing.retry).await;
        }
        tracing::info!(lease = %self.name, identity = %self.identity, "leading");
        let (tx, lost) = watch::channel(false);
        let this = self.clone();
        let renewer = tokio::spawn(async move {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(this.timing.retry).await;
                match this.try_acquire_or_renew().await {
                    Ok(Outcome::Leading) => last_renewed = tokio::time::Instant::now(),
                    Ok(Outcome::Following) => break,
                    Err(e) => {
                        tracing::warn!(lease = %this.name, error = %e, "cannot renew the lease");
                        // Give up before a successor may take over.
                        if last_renewed.elapsed() + this.timing.retry >= this.timing.duration {
                            break;
                        }
                    }
                }
            }
            tracing::error!(lease = %this.name, identity = %this.identity, "lost the lease");
            let _ = tx.send(true);
        });
        Leadership {
            candidate: self.clone(),
            lost,
            renewer,
        }
    }

    /// Writes the lease with no holder if this candidate holds it. Returns whether it did.
    async fn give_up(&self) -> Result<bool, kube::Error> {
        // A renewal in flight may write first: read again and retry.
        for _ in 0..3 {
            let Some(current) = self.api.get_opt(&self.name).await? else {
                return Ok(false);
            };
            let spec = current.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(false);
            }
            let lease = Lease {
                metadata: current.metadata,
                spec: Some(LeaseSpec {
                    holder_identity: None,
                    lease_duration_seconds: Some(1),
                    renew_time: Some(MicroTime(jiff::Timestamp::now())),
                    ..spec
                }),
            };
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    async fn try_acquire_or_renew(&self) -> Result<Outcome, kube::Error> {
        let now = jiff::Timestamp::now();
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Outcome::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Following),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == self.identity {
            let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
            self.spec(acquired, now, transitions)
        } else {
            let renewed = spec.renew_time.map(|t| t.0);
            let seconds = spec.lease_duration_seconds.unwrap_or(0).max(0);
            let expired = holder.is_empty()
                || renewed.is_none_or(|renewed| {
                    now.duration_since(renewed).as_secs() >= i64::from(seconds)
                });
            if !expired {
                return Ok(Outcome::Following);
            }
            self.spec(now, now, transitions + 1)
        };
        let lease = Lease {
            metadata: current.metadata,
            spec: Some(next),
        };
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Outcome::Leading),
            // Someone else wrote the lease since we read it.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Following),
            Err(e) => Err(e),
        }
    }

    fn spec(
        &self,
        acquired: jiff::Timestamp,
        renewed: jiff::Timestamp,
        transitions: i32,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.duration.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// The lease held by this process, renewed in the background.
pub struct Leadership {
    candidate: Candidate,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
}

impl Leadership {
    /// Completes once the lease is lost (renewals failed for the whole lease duration, or
    /// another holder took it): the caller must stop leading at once.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and gives the lease up, so a standby takes over at once. An API
    /// server that cannot be reached leaves the lease to expire instead.
    pub async fn release(mut self) {
        self.renewer.abort();
        let _ = (&mut self.renewer).await;
        let candidate = &self.candidate;
        match candidate.give_up().await {
            Ok(true) => {
                tracing::info!(lease = %candidate.name, identity = %candidate.identity, "released the lease")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lease = %candidate.name, error = %e, "cannot release the lease; it expires instead")
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
