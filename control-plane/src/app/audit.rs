//! The audit log: who did what, from where, and how it ended.

use berth_api::auth::{AuditEvent, ListAuditEventsQuery, ListAuditEventsResponse};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::paging::{self, PageRequest};
use super::{App, AppError, AppResult};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::store::audit::{AuditFilter, AuditRow};
use crate::store::{self, AccountScope};

/// One audited call, as the HTTP layer saw it.
pub struct AuditRecord {
    pub account: AccountScope,
    pub access_key_id: Option<String>,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub status_code: u16,
    pub source_ip: Option<String>,
    pub request_id: String,
}

impl App {
    pub async fn record_audit(&self, rec: AuditRecord) -> AppResult<()> {
        let mut tx = self.db().begin_write().await?;
        let row = AuditRow {
            id: Uuid::now_v7(),
            access_key_id: rec.access_key_id,
            action: rec.action,
            resource: rec.resource,
            outcome: rec.outcome,
            status_code: i64::from(rec.status_code),
            source_ip: rec.source_ip,
            request_id: rec.request_id,
            created_at: store::now(),
        };
        store::audit::insert(&mut tx, rec.account, &row).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_audit_events(
        &self,
        principal: &Principal,
        query: &ListAuditEventsQuery,
    ) -> AppResult<ListAuditEventsResponse> {
        authorize(principal, Action::ReadAudit, None)?;
        let page = PageRequest::<Uuid>::parse(query.limit, query.next_token.as_deref())?;
        let parse = |field: &str, v: &Option<String>| -> AppResult<Option<OffsetDateTime>> {
            v.as_deref()
                .map(|s| {
                    OffsetDateTime::parse(s, &Rfc3339)
                        .map_err(|_| AppError::bad_request(Some(field), format!("{field} must be an RFC 3339 time")))
                })
                .transpose()
        };
        let filter = AuditFilter {
            action: query.action.as_deref(),
            from: parse("from", &query.from)?,
            to: parse("to", &query.to)?,
        };
        let mut tx = self.db().begin_read().await?;
        let rows = store::audit::list(&mut tx, principal.scope(), &filter, page.after, page.fetch_limit()).await?;
        tx.rollback().await?;
        let (rows, next_token) = paging::finish(rows, page.limit, |r| r.id);
        let audit_events = rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.id,
                action: r.action,
                resource: r.resource,
                outcome: r.outcome,
                status_code: u16::try_from(r.status_code).unwrap_or(0),
                access_key_id: r.access_key_id,
                source_ip: r.source_ip,
                request_id: r.request_id,
                time: r.created_at,
            })
            .collect();
        Ok(ListAuditEventsResponse { audit_events, next_token })
    }
}
