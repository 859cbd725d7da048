//! Helpers every resource uses: the shared client, API errors as
//! diagnostics on the right attribute, and the plan rules tf-provider leaves
//! to us (defaults from config, computed values kept, forced replacement).

use std::sync::Arc;

use berth_sdk::{Client, Error};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Description};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};
use tokio::sync::RwLock;

/// The client, filled in by `ConfigureProvider` (resources are built before it).
pub type Api = Arc<RwLock<Option<Client>>>;

pub async fn client(api: &Api, diags: &mut Diagnostics) -> Option<Client> {
    let c = api.read().await.clone();
    if c.is_none() {
        diags.root_error_short("The berth provider is not configured");
    }
    c
}

pub fn attr(t: AttributeType, c: AttributeConstraint, description: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::plain(description),
        constraint: c,
        sensitive: false,
        deprecated: false,
    }
}

pub fn sensitive(mut a: Attribute) -> Attribute {
    a.sensitive = true;
    a
}

pub fn is_not_found(e: &Error) -> bool {
    e.api().is_some_and(|a| a.status == 404)
}

/// An API error as a diagnostic: on the attribute the API named (mapped
/// from the API's field to the resource's attribute), else on the resource.
pub fn report(diags: &mut Diagnostics, what: &str, e: &Error, field_to_attr: &[(&str, &'static str)]) {
    let summary = format!("{what} failed");
    let attribute = e
        .api()
        .and_then(|a| a.field.as_deref())
        .and_then(|f| {
            field_to_attr
                .iter()
                .find(|(api, _)| f == *api || f.starts_with(&format!("{api}.")) || f.starts_with(&format!("{api}[")))
        })
        .map(|(_, a)| *a);
    match attribute {
        Some(a) => diags.error(summary, e.to_string(), AttributePath::new(a)),
        None => diags.root_error(summary, e.to_string()),
    }
}

/// Read's rule: only a 404 removes a resource from state; any other error
/// keeps the prior state and says why.
pub enum Read<T> {
    Gone,
    Found(T),
    Failed,
}

pub fn read_result<T>(diags: &mut Diagnostics, what: &str, r: Result<T, Error>) -> Read<T> {
    match r {
        Ok(v) => Read::Found(v),
        Err(e) if is_not_found(&e) => Read::Gone,
        Err(e) => {
            report(diags, what, &e, &[]);
            Read::Failed
        }
    }
}

/// The configured value, or `default` where the configuration has none
/// (an unknown value stays unknown: it comes from another resource).
pub fn or_default<T>(config: &Value<T>, default: T) -> Value<T>
where
    T: Clone,
{
    match config {
        Value::Null => Value::Value(default),
        other => other.clone(),
    }
}

/// The value to plan for a computed attribute on update: the prior one.
pub fn keep<T: Clone>(prior: &Value<T>) -> Value<T> {
    prior.clone()
}

/// Whether a known planned value differs from the prior one (unknown counts as a change).
pub fn changed<T: PartialEq>(prior: &Value<T>, planned: &Value<T>) -> bool {
    match planned {
        Value::Unknown => true,
        p => p != prior,
    }
}

/// Paths of attributes that force replacement and changed.
pub fn replacements(list: &[(&'static str, bool)]) -> Vec<AttributePath> {
    list.iter().filter(|(_, c)| *c).map(|(a, _)| AttributePath::new(*a)).collect()
}

pub fn string(v: &Value<String>) -> Option<&str> {
    v.as_ref_option().map(String::as_str)
}

pub fn some_or_null<T>(v: Option<T>) -> Value<T> {
    match v {
        Some(v) => Value::Value(v),
        None => Value::Null,
    }
}

pub fn known<T>(v: T) -> Value<T> {
    Value::Value(v)
}

/// Destroy's rule: done when the call succeeded or the object was already gone.
pub fn deleted<T>(d: &mut Diagnostics, what: &str, r: Result<T, Error>) -> Option<()> {
    match r {
        Ok(_) => Some(()),
        Err(e) if is_not_found(&e) => Some(()),
        Err(e) => {
            report(d, what, &e, &[]);
            None
        }
    }
}
