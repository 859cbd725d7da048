//! Task definitions from a file: Berth's own JSON or YAML, or what ECS users
//! already have (a task definition as `aws ecs describe-task-definition` or
//! `register-task-definition --cli-input-json` takes it, or a bare
//! `containerDefinitions` array), converted field by field. ECS fields Berth
//! has no equivalent for are dropped with a warning, never silently.

use berth_api::task_definitions::RegisterTaskDefinitionRequest;
use serde_json::{Map, Value, json};

/// The request, and warnings about what was not carried over.
pub fn load(text: &str, family: Option<&str>) -> Result<(RegisterTaskDefinitionRequest, Vec<String>), String> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(json_err) => serde_yaml_ng::from_str(text)
            .map_err(|yaml_err| format!("neither JSON ({json_err}) nor YAML ({yaml_err})"))?,
    };
    let mut warnings = Vec::new();
    let value = match value {
        Value::Object(mut m) if m.contains_key("taskDefinition") => m.remove("taskDefinition").unwrap_or_default(),
        other => other,
    };
    let mut def = match value {
        Value::Array(containers) => {
            let family = family.ok_or("a bare containerDefinitions array needs --family")?;
            from_ecs(&json!({"family": family, "containerDefinitions": containers}), &mut warnings)?
        }
        Value::Object(m) if m.contains_key("containerDefinitions") => from_ecs(&Value::Object(m), &mut warnings)?,
        other => other,
    };
    if let Some(f) = family {
        def["family"] = json!(f);
    }
    let req = serde_json::from_value(def).map_err(|e| format!("not a task definition: {e}"))?;
    Ok((req, warnings))
}

fn snake(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A number from an ECS value that may be a string (`"cpu": "256"`).
fn number(v: &Value) -> Option<Value> {
    match v {
        Value::Number(_) => Some(v.clone()),
        Value::String(s) => s.trim().parse::<u64>().ok().map(|n| json!(n)),
        _ => None,
    }
}

/// `[{"name": k, "value": v}]` (or `{"key", "value"}` for tags) as a map.
fn name_values(v: &Value, key: &str) -> Value {
    let mut m = Map::new();
    for item in v.as_array().into_iter().flatten() {
        if let (Some(k), Some(val)) = (item[key].as_str(), item["value"].as_str()) {
            m.insert(k.to_owned(), json!(val));
        }
    }
    Value::Object(m)
}

fn from_ecs(ecs: &Value, warnings: &mut Vec<String>) -> Result<Value, String> {
    let mut out = Map::new();
    for (k, v) in ecs.as_object().into_iter().flatten() {
        match k.as_str() {
            "family" => {
                out.insert("family".into(), v.clone());
            }
            "cpu" | "memory" => {
                if let Some(n) = number(v) {
                    out.insert(k.clone(), n);
                }
            }
            "networkMode" => {
                let mode = match v.as_str() {
                    Some("host") => "host",
                    Some("none") => "none",
                    Some("awsvpc") => {
                        warnings.push("networkMode awsvpc became bridge (a network namespace per task)".into());
                        "bridge"
                    }
                    _ => "bridge",
                };
                out.insert("network_mode".into(), json!(mode));
            }
            "tags" => {
                out.insert("tags".into(), name_values(v, "key"));
            }
            "containerDefinitions" => {
                let list = v.as_array().ok_or("containerDefinitions must be an array")?;
                let converted: Result<Vec<Value>, String> =
                    list.iter().enumerate().map(|(i, c)| container(i, c, warnings)).collect();
                out.insert("container_definitions".into(), Value::Array(converted?));
            }
            // What ECS reports back about a registered revision, not part of a definition.
            "taskDefinitionArn" | "revision" | "status" | "registeredAt" | "registeredBy" | "deregisteredAt"
            | "requiresAttributes" | "compatibilities" => {}
            other => warnings.push(format!("{other} has no Berth equivalent and was left out")),
        }
    }
    Ok(Value::Object(out))
}

fn container(i: usize, c: &Value, warnings: &mut Vec<String>) -> Result<Value, String> {
    let mut out = Map::new();
    let name = c["name"].as_str().unwrap_or("?").to_owned();
    for (k, v) in c.as_object().ok_or(format!("containerDefinitions[{i}] must be an object"))? {
        let value = match k.as_str() {
            "name"
            | "image"
            | "command"
            | "entryPoint"
            | "essential"
            | "stopTimeout"
            | "workingDirectory"
            | "user"
            | "readonlyRootFilesystem"
            | "pidsLimit" => v.clone(),
            "cpu" | "memory" | "memoryReservation" => match number(v) {
                Some(n) => n,
                None => continue,
            },
            "environment" => name_values(v, "name"),
            "dockerLabels" => {
                out.insert("labels".into(), v.clone());
                continue;
            }
            "portMappings" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let mut m = Map::new();
                        m.insert("container_port".into(), p["containerPort"].clone());
                        if let Some(h) = p["hostPort"].as_u64() {
                            m.insert("host_port".into(), json!(h));
                        }
                        if let Some(proto) = p["protocol"].as_str() {
                            m.insert("protocol".into(), json!(proto.to_ascii_lowercase()));
                        }
                        Value::Object(m)
                    })
                    .collect(),
            ),
            "healthCheck" => {
                let mut m = Map::new();
                for (hk, hv) in v.as_object().into_iter().flatten() {
                    m.insert(snake(hk), hv.clone());
                }
                Value::Object(m)
            }
            "dependsOn" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| json!({"container_name": d["containerName"], "condition": d["condition"]}))
                    .collect(),
            ),
            "ulimits" => Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| json!({"name": u["name"], "soft_limit": u["softLimit"], "hard_limit": u["hardLimit"]}))
                    .collect(),
            ),
            "repositoryCredentials" => {
                warnings.push(format!(
                    "container {name}: repositoryCredentials names a Secrets Manager ARN; name a Berth registry credential in repository_credentials instead"
                ));
                continue;
            }
            other => {
                warnings.push(format!("container {name}: {other} has no Berth equivalent and was left out"));
                continue;
            }
        };
        out.insert(snake(k), value);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ecs_task_definition_converts_and_says_what_it_dropped() {
        let ecs = r#"{"taskDefinition": {"family": "web", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
            "executionRoleArn": "arn:aws:iam::1:role/x", "revision": 3,
            "tags": [{"key": "team", "value": "core"}],
            "containerDefinitions": [{"name": "app", "image": "nginx:1", "memoryReservation": 128, "essential": true,
              "portMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}],
              "environment": [{"name": "MODE", "value": "prod"}],
              "healthCheck": {"command": ["CMD-SHELL", "true"], "startPeriod": 5},
              "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
              "logConfiguration": {"logDriver": "awslogs"}},
             {"name": "init", "image": "busybox", "essential": false, "memory": 16}]}}"#;
        let (req, warnings) = load(ecs, None).expect("converts");
        assert_eq!(req.family, "web");
        assert_eq!((req.cpu, req.memory), (Some(256), Some(512)));
        assert_eq!(req.tags.get("team").map(String::as_str), Some("core"));
        let app = &req.container_definitions[0];
        assert_eq!(app.memory_reservation, Some(128));
        assert_eq!(app.port_mappings[0].host_port, 8080);
        assert_eq!(app.environment.get("MODE").map(String::as_str), Some("prod"));
        assert_eq!(app.health_check.as_ref().and_then(|h| h.start_period), Some(5));
        assert_eq!(app.depends_on[0].container_name, "init");
        assert!(!req.container_definitions[1].essential);
        assert!(warnings.iter().any(|w| w.contains("executionRoleArn")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("logConfiguration")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("awsvpc")), "{warnings:?}");
    }

    #[test]
    fn berth_yaml_and_bare_container_lists_load() {
        let yaml = "family: api\ncontainer_definitions:\n  - name: app\n    image: busybox\n    memory: 64\n";
        let (req, warnings) = load(yaml, None).expect("yaml");
        assert_eq!((req.family.as_str(), warnings.len()), ("api", 0));
        let bare = r#"[{"name": "app", "image": "busybox", "memory": 32}]"#;
        assert!(load(bare, None).is_err(), "a bare list needs a family");
        let (req, _) = load(bare, Some("jobs")).expect("with --family");
        assert_eq!(req.family, "jobs");
        let err = load(r#"{"family": "x", "container_definitions": [], "bogus": 1}"#, None).expect_err("unknown field");
        assert!(err.contains("bogus"), "{err}");
    }
}
