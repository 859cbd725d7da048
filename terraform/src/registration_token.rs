//! `berth_registration_token`: a token host agents register with. Every
//! setting forces a new token; destroy revokes it. The token itself is known
//! only when created (sensitive, kept in state).

use async_trait::async_trait;
use berth_api::auth::{CreateRegistrationTokenRequest, RegistrationToken, RegistrationTokenStatus};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Block, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource, map};

use crate::util::*;

pub struct RegistrationTokenResource(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct TokenState {
    pub id: Value<String>,
    pub cluster: Value<String>,
    pub max_uses: Value<i64>,
    pub expires_in_seconds: Value<i64>,
    pub description: Value<String>,
    pub token: Value<String>,
    pub expires_at: Value<String>,
}

fn state_of(t: &RegistrationToken, prior: &TokenState) -> TokenState {
    TokenState {
        id: known(t.id.to_string()),
        cluster: prior.cluster.clone(),
        max_uses: known(t.max_uses),
        // What it was made with (an imported token has no configuration to keep it from).
        expires_in_seconds: known((t.expires_at - t.created_at).whole_seconds()),
        description: some_or_null(t.description.clone()),
        token: prior.token.clone(),
        expires_at: known(t.expires_at.format(&time_format()).unwrap_or_default()),
    }
}

fn time_format() -> time::format_description::well_known::Rfc3339 {
    time::format_description::well_known::Rfc3339
}

async fn find(c: &berth_sdk::Client, cluster: &str, id: &str) -> Result<Option<RegistrationToken>, berth_sdk::Error> {
    let mut token = None;
    loop {
        let page =
            c.list_registration_tokens(cluster, &berth_api::Page { limit: Some(100), next_token: token }).await?;
        if let Some(t) = page.registration_tokens.into_iter().find(|t| t.id.to_string() == id) {
            return Ok(Some(t));
        }
        match page.next_token {
            Some(n) => token = Some(n),
            None => return Ok(None),
        }
    }
}

#[async_trait]
impl Resource for RegistrationTokenResource {
    type State<'a> = TokenState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        let (s, n) = (AttributeType::String, AttributeType::Number);
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "id" => attr(s.clone(), Computed, "The token's id"),
                    "cluster" => attr(s.clone(), Required, "The cluster hosts join with it"),
                    "max_uses" => attr(n.clone(), OptionalComputed, "How many hosts may register with it (default 1)"),
                    "expires_in_seconds" => attr(n, OptionalComputed, "Lifetime in seconds (default 3600)"),
                    "description" => attr(s.clone(), Optional, "What it is for"),
                    "token" => sensitive(attr(s.clone(), Computed, "The token (for berth agent --registration-token); known only to the configuration that created it")),
                    "expires_at" => attr(s, Computed, "When it expires (RFC 3339)")
                },
                description: "A token Berth host agents register with".into(),
                ..Default::default()
            },
        })
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        state: TokenState,
        p: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(TokenState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let (cluster, id) = (string(&state.cluster)?.to_owned(), string(&state.id)?.to_owned());
        match read_result(d, "Reading the registration token", find(&c, &cluster, &id).await) {
            Read::Found(Some(t)) if t.status == RegistrationTokenStatus::Active => Some((state_of(&t, &state), p)),
            // Revoked or gone (its cluster too): plan a new one.
            Read::Found(_) | Read::Gone => None,
            Read::Failed => Some((state, p)),
        }
    }

    async fn plan_create<'a>(
        &self,
        _d: &mut Diagnostics,
        _p: TokenState,
        config: TokenState,
        _m: ValueEmpty,
    ) -> Option<(TokenState, ValueEmpty)> {
        Some((
            TokenState {
                id: Value::Unknown,
                token: Value::Unknown,
                expires_at: Value::Unknown,
                max_uses: or_default(&config.max_uses, 1),
                expires_in_seconds: or_default(&config.expires_in_seconds, 3600),
                ..config
            },
            ValueEmpty::default(),
        ))
    }

    async fn plan_update<'a>(
        &self,
        d: &mut Diagnostics,
        prior: TokenState,
        _p: TokenState,
        config: TokenState,
        pp: ValueEmpty,
        m: ValueEmpty,
    ) -> Option<(TokenState, ValueEmpty, Vec<AttributePath>)> {
        let (mut plan, _) = self.plan_create(d, prior.clone(), config, m).await?;
        let replace = replacements(&[
            ("cluster", changed(&prior.cluster, &plan.cluster)),
            ("max_uses", changed(&prior.max_uses, &plan.max_uses)),
            ("expires_in_seconds", changed(&prior.expires_in_seconds, &plan.expires_in_seconds)),
            ("description", changed(&prior.description, &plan.description)),
        ]);
        if replace.is_empty() {
            plan.id = keep(&prior.id);
            plan.token = keep(&prior.token);
            plan.expires_at = keep(&prior.expires_at);
        }
        Some((plan, pp, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: TokenState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(pp)
    }

    async fn create<'a>(
        &self,
        d: &mut Diagnostics,
        planned: TokenState,
        _c: TokenState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(TokenState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let req = CreateRegistrationTokenRequest {
            expires_in_seconds: planned.expires_in_seconds.as_ref_option().and_then(|v| u64::try_from(*v).ok()),
            max_uses: planned.max_uses.as_ref_option().copied(),
            description: planned.description.as_ref_option().cloned(),
        };
        match c.create_registration_token(string(&planned.cluster)?, &req).await {
            Ok(made) => {
                let mut s = state_of(&made.registration_token, &planned);
                s.token = known(made.token);
                Some((s, pp))
            }
            Err(e) => {
                report(
                    d,
                    "Creating the registration token",
                    &e,
                    &[
                        ("max_uses", "max_uses"),
                        ("expires_in_seconds", "expires_in_seconds"),
                        ("description", "description"),
                    ],
                );
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: TokenState,
        planned: TokenState,
        _c: TokenState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(TokenState, ValueEmpty)> {
        Some((planned, pp))
    }

    async fn destroy<'a>(&self, d: &mut Diagnostics, prior: TokenState, _pp: ValueEmpty, _m: ValueEmpty) -> Option<()> {
        let c = client(&self.0, d).await?;
        deleted(
            d,
            "Revoking the registration token",
            c.revoke_registration_token(string(&prior.cluster)?, string(&prior.id)?).await,
        )
    }

    /// `terraform import berth_registration_token.x cluster/token-id` (the token itself stays unknown).
    async fn import<'a>(&self, d: &mut Diagnostics, id: String) -> Option<(TokenState, ValueEmpty)> {
        let Some((cluster, token)) = id.split_once('/') else {
            d.root_error("Invalid import id", format!("{id:?}: import a registration token as cluster/token-id"));
            return None;
        };
        Some((
            TokenState { cluster: known(cluster.to_owned()), id: known(token.to_owned()), ..Default::default() },
            ValueEmpty::default(),
        ))
    }
}
