//! Group commit for audit rows that stand alone (reads, searches, downloads, sign-in events).
//!
//! Every row must link to the one committed before it, so writers take one advisory lock. If
//! each request took it in a transaction of its own, a flood of audited requests would queue
//! on that lock while each held a pooled connection, and every other page would wait for a
//! connection. The [`Writer`] instead hands rows to one task that appends whatever has queued
//! up in a single transaction (one lock, one commit for many rows) and tells each caller its
//! row's id once it is committed — so a read is still recorded before its content is sent,
//! but waiting callers hold no connection.
//!
//! Rows that belong to a change (a user edited, mail deleted) are still written inside that
//! change's transaction with [`super::record`].

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::AuditEvent;
use crate::error::{Error, Result};

/// Most rows appended in one transaction.
const MAX_BATCH: usize = 256;
/// Rows waiting for the writer; callers beyond this wait for room (backpressure).
const QUEUE: usize = 4096;

struct Job {
    event: AuditEvent,
    reply: oneshot::Sender<Result<i64>>,
}

/// A handle on the group-commit task; cheap to clone. The task ends when the last handle is
/// dropped, after writing what was queued.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writing task on the current Tokio runtime.
    pub fn start(pool: PgPool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue));
        Self { jobs }
    }

    /// Appends `event` and returns its id once it is committed.
    pub async fn record(&self, event: AuditEvent) -> Result<i64> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { event, reply })
            .await
            .map_err(|_| Error::Internal("the audit writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the audit writer dropped a row".into()))?
    }
}

async fn run(pool: PgPool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write(&pool, &batch).await {
            Ok(ids) => {
                for (job, id) in batch.drain(..).zip(ids) {
                    let _ = job.reply.send(Ok(id));
                }
            }
            Err(e) => {
                // One row at a time, so one bad row cannot fail the others with it.
                tracing::warn!(error = %crate::error::chain(&e), rows = batch.len(), "audit batch failed; writing its rows one by one");
                for job in batch.drain(..) {
                    let r = super::record_now_returning_id(&pool, &job.event).await;
                    let _ = job.reply.send(r);
                }
            }
        }
    }
}

async fn write(pool: &PgPool, batch: &[Job]) -> Result<Vec<i64>> {
    let mut tx = pool.begin().await?;
    let mut prev = super::lock_chain(&mut tx).await?;
    let mut ids = Vec::with_capacity(batch.len());
    for job in batch {
        ids.push(super::append(&mut tx, &mut prev, &job.event).await?);
    }
    tx.commit().await?;
    Ok(ids)
}
