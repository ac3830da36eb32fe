//! `skillbridge call --replay URL`: reads one recorded call from a bridge's admin endpoint (`GET /calls/{id}`, kept
//! with `serve --record-arguments`) so that `call` can run it again here, with the same arguments and ids.

use serde::Deserialize;
use serde_json::Value;

use crate::skill::{Catalog, REDACTED};

/// A call as `GET /calls/{request_id}` shows it: what a replay needs.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordedCall {
    pub(crate) tool: String,
    pub(crate) session: String,
    pub(crate) turn_id: Option<String>,
    pub(crate) call_id: String,
    pub(crate) request_id: String,
    arguments: Option<Value>,
    arguments_omitted: Option<String>,
}

impl RecordedCall {
    /// Reads the call at `url` (an admin endpoint's `/calls/{request_id}`), with `token` when the endpoint needs
    /// one. The error says what went wrong, for a usage error.
    pub(crate) async fn fetch(url: &str, token: Option<&str>) -> Result<Self, String> {
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let shown = crate::manager::redact_url(url).into_owned();
        let response = request
            .send()
            .await
            .map_err(|error| format!("cannot read {shown}: {}", crate::manager::connection_failure(&error)))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(format!(
                "{shown} needs the admin token: set SKILLBRIDGE_ADMIN_TOKEN (or --admin-token)"
            ));
        }
        if !status.is_success() {
            let reason = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|body| body["error"].as_str().map(str::to_owned))
                .unwrap_or(body);
            return Err(format!("{shown} answered {status}: {reason}"));
        }
        serde_json::from_str(&body).map_err(|error| format!("{shown} is not a recorded call ({error})"))
    }

    /// The arguments to run the call with; an error when they were not recorded or some were redacted.
    pub(crate) fn arguments(&self, catalog: &Catalog) -> Result<Value, String> {
        let Some(arguments) = &self.arguments else {
            let why = self.arguments_omitted.clone().unwrap_or_else(|| {
                "the bridge does not record arguments; serve with --record-arguments to replay calls".to_owned()
            });
            return Err(format!(
                "call {} was recorded without its arguments: {why}",
                self.request_id
            ));
        };
        let redacted: Vec<&str> = catalog
            .get(&self.tool)
            .map(|skill| {
                skill
                    .redacted_parameters()
                    .iter()
                    .filter(|name| arguments.get(name.as_str()) == Some(&Value::from(REDACTED)))
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default();
        if !redacted.is_empty() {
            return Err(format!(
                "call {} cannot be replayed: its {} {} redacted when it was recorded",
                self.request_id,
                redacted.join(", "),
                if redacted.len() == 1 {
                    "argument was"
                } else {
                    "arguments were"
                }
            ));
        }
        Ok(arguments.clone())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::skill::RuntimeSkill;

    fn recorded(arguments: Option<Value>, omitted: Option<&str>) -> RecordedCall {
        RecordedCall {
            tool: "login".into(),
            session: "thread".into(),
            turn_id: None,
            call_id: "call_0".into(),
            request_id: "7".into(),
            arguments,
            arguments_omitted: omitted.map(str::to_owned),
        }
    }

    #[test]
    fn a_call_without_its_arguments_or_with_redacted_ones_is_not_replayed() {
        let login = RuntimeSkill::builder("login", "Logs in.")
            .redact(["password"])
            .handler(|_, _| async { "ok" })
            .build()
            .unwrap();
        let catalog = Catalog::builder().without_registry().skill(login).build().unwrap();
        let whole = json!({"user": "ada", "password": "s3cret"});
        assert_eq!(recorded(Some(whole.clone()), None).arguments(&catalog).unwrap(), whole);
        let redacted = json!({"user": "ada", "password": REDACTED});
        assert_eq!(
            recorded(Some(redacted), None).arguments(&catalog).unwrap_err(),
            "call 7 cannot be replayed: its password argument was redacted when it was recorded"
        );
        assert_eq!(
            recorded(None, None).arguments(&catalog).unwrap_err(),
            "call 7 was recorded without its arguments: the bridge does not record arguments; serve with \
             --record-arguments to replay calls"
        );
        let omitted = "the arguments were 9000 bytes of JSON, more than the 4096 a record keeps";
        assert!(
            recorded(None, Some(omitted))
                .arguments(&catalog)
                .unwrap_err()
                .ends_with(omitted)
        );
    }
}
