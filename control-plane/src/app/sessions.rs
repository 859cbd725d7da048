//! Exchanging a signed request for a session token.

use berth_api::auth::{CreateSessionRequest, JwkSet, Session};
use time::Duration;

use super::{App, AppError, AppResult};
use crate::auth::Principal;
use crate::auth::policy::{Action, authorize};
use crate::auth::session::Claims;

impl App {
    /// Only a SigV4-signed request may create a session: a session cannot extend itself.
    pub async fn create_session(&self, principal: &Principal, req: CreateSessionRequest) -> AppResult<Session> {
        authorize(principal, Action::CreateSession, None)?;
        if principal.via_session {
            return Err(AppError::AccessDenied(
                "sessions are created with a SigV4-signed request, not with a session".into(),
            ));
        }
        let sessions = &self.auth().sessions;
        let settings = sessions.settings();
        let lifetime = match req.duration_seconds {
            None => settings.default_lifetime,
            Some(s) => {
                let max = settings.max_lifetime.whole_seconds();
                let s = i64::try_from(s).unwrap_or(i64::MAX);
                if !(60..=max).contains(&s) {
                    return Err(AppError::validation("duration_seconds", format!("duration_seconds must be 60-{max}")));
                }
                Duration::seconds(s)
            }
        };
        let claims = Claims {
            iss: String::new(),
            sub: principal.access_key_id.clone().unwrap_or_default(),
            acc: principal.account_id.to_string(),
            role: principal.role.as_str().to_owned(),
            clusters: principal.clusters.clone(),
            iat: 0,
            exp: 0,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let (token, expires_at) = sessions.issue(self.db(), claims, lifetime).await?;
        Ok(Session { token, token_type: "Bearer".into(), expires_at })
    }

    pub async fn jwks(&self) -> AppResult<JwkSet> {
        self.auth().sessions.jwks(self.db()).await
    }
}
