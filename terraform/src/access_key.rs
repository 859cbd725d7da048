//! `berth_access_key`: an access key of the provider's account. The secret
//! is in state only (sensitive), from the apply that created the key.

use async_trait::async_trait;
use berth_api::auth::{AccessKey, CreateAccessKeyRequest, Role};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::*, AttributeType, Block, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource, map};

use crate::util::*;

pub struct AccessKeyResource(pub Api);

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Debug)]
pub struct KeyState {
    /// The access key id.
    pub id: Value<String>,
    pub role: Value<String>,
    pub clusters: Value<Vec<String>>,
    pub description: Value<String>,
    pub secret_access_key: Value<String>,
    pub active: Value<bool>,
}

fn role_name(r: Role) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn state_of(k: &AccessKey, prior: &KeyState) -> KeyState {
    KeyState {
        id: known(k.access_key_id.clone()),
        role: known(role_name(k.role)),
        clusters: some_or_null(k.clusters.clone()),
        description: some_or_null(k.description.clone()),
        secret_access_key: prior.secret_access_key.clone(),
        active: known(k.status == berth_api::auth::AccessKeyStatus::Active),
    }
}

#[async_trait]
impl Resource for AccessKeyResource {
    type State<'a> = KeyState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _d: &mut Diagnostics) -> Option<Schema> {
        let s = AttributeType::String;
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "id" => attr(s.clone(), Computed, "The access key id"),
                    "role" => attr(s.clone(), Required, "admin, operator or read-only; changing it makes a new key"),
                    "clusters" => attr(AttributeType::List(Box::new(s.clone())), Optional, "Only these clusters (default all); changing it makes a new key"),
                    "description" => attr(s.clone(), Optional, "What it is for; changing it makes a new key"),
                    "secret_access_key" => sensitive(attr(s, Computed, "The secret, only in state, from the apply that created the key")),
                    "active" => attr(AttributeType::Bool, OptionalComputed, "false deactivates the key (default true)")
                },
                description: "An access key (SigV4) of the provider's Berth account".into(),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, d: &mut Diagnostics, config: KeyState) -> Option<()> {
        if let Some(r) = string(&config.role)
            && Role::parse(r).is_none()
        {
            d.error("Invalid role", format!("{r:?} is not admin, operator or read-only"), AttributePath::new("role"));
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        d: &mut Diagnostics,
        state: KeyState,
        p: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(KeyState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        match read_result(d, "Reading the access key", c.get_access_key(string(&state.id)?).await) {
            Read::Found(k) => Some((state_of(&k, &state), p)),
            Read::Gone => None,
            Read::Failed => Some((state, p)),
        }
    }

    async fn plan_create<'a>(
        &self,
        _d: &mut Diagnostics,
        _p: KeyState,
        config: KeyState,
        _m: ValueEmpty,
    ) -> Option<(KeyState, ValueEmpty)> {
        Some((
            KeyState {
                id: Value::Unknown,
                secret_access_key: Value::Unknown,
                active: or_default(&config.active, true),
                ..config
            },
            ValueEmpty::default(),
        ))
    }

    async fn plan_update<'a>(
        &self,
        _d: &mut Diagnostics,
        prior: KeyState,
        _p: KeyState,
        config: KeyState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(KeyState, ValueEmpty, Vec<AttributePath>)> {
        let mut plan = KeyState { active: or_default(&config.active, true), ..config };
        let replace = replacements(&[
            ("role", changed(&prior.role, &plan.role)),
            ("clusters", changed(&prior.clusters, &plan.clusters)),
            ("description", changed(&prior.description, &plan.description)),
        ]);
        if replace.is_empty() {
            plan.id = keep(&prior.id);
            plan.secret_access_key = keep(&prior.secret_access_key);
        } else {
            plan.id = Value::Unknown;
            plan.secret_access_key = Value::Unknown;
        }
        Some((plan, pp, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _d: &mut Diagnostics,
        _prior: KeyState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<ValueEmpty> {
        Some(pp)
    }

    async fn create<'a>(
        &self,
        d: &mut Diagnostics,
        planned: KeyState,
        _c: KeyState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(KeyState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let req = CreateAccessKeyRequest {
            role: string(&planned.role).and_then(Role::parse)?,
            clusters: planned.clusters.as_ref_option().cloned(),
            description: planned.description.as_ref_option().cloned(),
        };
        let made = match c.create_access_key(&req).await {
            Ok(m) => m,
            Err(e) => {
                report(
                    d,
                    "Creating the access key",
                    &e,
                    &[("role", "role"), ("clusters", "clusters"), ("description", "description")],
                );
                return None;
            }
        };
        let mut s = state_of(&made.access_key, &planned);
        s.secret_access_key = known(made.secret_access_key);
        if planned.active.as_ref_option() == Some(&false) {
            match c.deactivate_access_key(&made.access_key.access_key_id).await {
                Ok(k) => s.active = known(k.status == berth_api::auth::AccessKeyStatus::Active),
                Err(e) => report(d, "Deactivating the new access key", &e, &[("active", "active")]),
            }
        }
        Some((s, pp))
    }

    async fn update<'a>(
        &self,
        d: &mut Diagnostics,
        prior: KeyState,
        planned: KeyState,
        _c: KeyState,
        pp: ValueEmpty,
        _m: ValueEmpty,
    ) -> Option<(KeyState, ValueEmpty)> {
        let c = client(&self.0, d).await?;
        let id = string(&prior.id)?.to_owned();
        let r = if planned.active.as_ref_option() == Some(&false) {
            c.deactivate_access_key(&id).await
        } else {
            c.reactivate_access_key(&id).await
        };
        match r {
            Ok(k) => Some((state_of(&k, &prior), pp)),
            Err(e) => {
                report(d, "Updating the access key", &e, &[]);
                None
            }
        }
    }

    async fn destroy<'a>(&self, d: &mut Diagnostics, prior: KeyState, _pp: ValueEmpty, _m: ValueEmpty) -> Option<()> {
        let c = client(&self.0, d).await?;
        deleted(d, "Deleting the access key", c.delete_access_key(string(&prior.id)?).await)
    }

    /// `terraform import berth_access_key.x <access key id>` (the secret stays unknown).
    async fn import<'a>(&self, _d: &mut Diagnostics, id: String) -> Option<(KeyState, ValueEmpty)> {
        Some((KeyState { id: known(id), ..Default::default() }, ValueEmpty::default()))
    }
}
