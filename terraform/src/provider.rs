//! The provider block: where Berth is and how to sign requests. Unset
//! attributes come from the same places the CLI reads: `BERTH_ENDPOINT`,
//! `BERTH_REGION`, `BERTH_ACCESS_KEY_ID`, `BERTH_SECRET_ACCESS_KEY`, then the
//! profile (`profile`, `BERTH_PROFILE`, else `default`) in the credentials file.

use std::collections::HashMap;

use async_trait::async_trait;
use berth_sdk::{Client, Credentials};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint::Optional, AttributeType, Block, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{Diagnostics, DynamicDataSource, DynamicResource, Provider, map};

use crate::util::{Api, attr, sensitive};

#[derive(Default)]
pub struct BerthProvider {
    api: Api,
}

#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub struct Config {
    pub endpoint: Value<String>,
    pub region: Value<String>,
    pub access_key_id: Value<String>,
    pub secret_access_key: Value<String>,
    pub profile: Value<String>,
}

fn pick(config: &Value<String>, env: &str, profile: Option<&String>) -> Option<String> {
    config
        .as_ref_option()
        .cloned()
        .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
        .or_else(|| profile.filter(|v| !v.is_empty()).cloned())
}

#[async_trait]
impl Provider for BerthProvider {
    type Config<'a> = Config;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                attributes: map! {
                    "endpoint" => attr(AttributeType::String, Optional, "The Berth API's URL [env BERTH_ENDPOINT, or the profile's]"),
                    "region" => attr(AttributeType::String, Optional, "The SigV4 region [env BERTH_REGION, or the profile's; default local]"),
                    "access_key_id" => attr(AttributeType::String, Optional, "Access key id [env BERTH_ACCESS_KEY_ID, or the profile's]"),
                    "secret_access_key" => sensitive(attr(AttributeType::String, Optional, "Secret access key [env BERTH_SECRET_ACCESS_KEY, or the profile's]")),
                    "profile" => attr(AttributeType::String, Optional, "A profile in the CLI's credentials file [env BERTH_PROFILE; default default]")
                },
                description: "Berth: a self-hostable container orchestration control plane".into(),
                ..Default::default()
            },
        })
    }

    async fn configure<'a>(&self, diags: &mut Diagnostics, _tf: String, config: Config) -> Option<()> {
        let profile_name = pick(&config.profile, "BERTH_PROFILE", None).unwrap_or_else(|| "default".into());
        let profile = berth_sdk::profile::default_path()
            .and_then(|p| berth_sdk::profile::read_profile(&p, &profile_name).ok().flatten());
        let p = profile.as_ref();
        let endpoint = pick(&config.endpoint, "BERTH_ENDPOINT", p.map(|p| &p.endpoint))
            .unwrap_or_else(|| "http://127.0.0.1:7070".into());
        let region = pick(&config.region, "BERTH_REGION", p.map(|p| &p.region)).unwrap_or_else(|| "local".into());
        let key = pick(&config.access_key_id, "BERTH_ACCESS_KEY_ID", p.map(|p| &p.access_key_id));
        let secret = pick(&config.secret_access_key, "BERTH_SECRET_ACCESS_KEY", p.map(|p| &p.secret_access_key));
        let (Some(key), Some(secret)) = (key, secret) else {
            diags.root_error(
                "No Berth credentials",
                format!(
                    "set access_key_id and secret_access_key, or BERTH_ACCESS_KEY_ID and BERTH_SECRET_ACCESS_KEY, or write the [{profile_name}] profile with `berth configure`"
                ),
            );
            return None;
        };
        match Client::new(&endpoint, Credentials::sigv4(key, secret, region)) {
            Ok(c) => {
                *self.api.write().await = Some(c);
                Some(())
            }
            Err(e) => {
                diags.root_error("Cannot build the Berth client", e.to_string());
                None
            }
        }
    }

    fn get_resources(&self, _diags: &mut Diagnostics) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        let api = &self.api;
        Some(map! {
            "cluster" => Box::new(crate::cluster::ClusterResource(api.clone())) as Box<dyn DynamicResource>,
            "task_definition" => Box::new(crate::task_definition::TaskDefinitionResource(api.clone())) as Box<dyn DynamicResource>,
            "service" => Box::new(crate::service::ServiceResource(api.clone())) as Box<dyn DynamicResource>,
            "registration_token" => Box::new(crate::registration_token::RegistrationTokenResource(api.clone())) as Box<dyn DynamicResource>,
            "access_key" => Box::new(crate::access_key::AccessKeyResource(api.clone())) as Box<dyn DynamicResource>,
            "account" => Box::new(crate::account::AccountResource(api.clone())) as Box<dyn DynamicResource>,
            "account_quota" => Box::new(crate::account::AccountQuotaResource(api.clone())) as Box<dyn DynamicResource>
        })
    }

    fn get_data_sources(&self, _diags: &mut Diagnostics) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        let api = &self.api;
        Some(map! {
            "cluster" => Box::new(crate::data::ClusterData(api.clone())) as Box<dyn DynamicDataSource>,
            "task_definition" => Box::new(crate::data::TaskDefinitionData(api.clone())) as Box<dyn DynamicDataSource>,
            "hosts" => Box::new(crate::data::HostsData(api.clone())) as Box<dyn DynamicDataSource>
        })
    }
}
