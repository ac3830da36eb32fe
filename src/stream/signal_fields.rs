//! An app-server payload read straight into the parts of an [`AppServerSignal`], without building a `Value` for
//! anything but its `params`. [`AppServerSignal::from_owned_payload`] reads through this too (from a `Value`), so
//! the socket task's shortcut and the general path agree on every payload.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::envelope::Field;
use super::signal::{
    APP_SERVER_REQUEST_PREFIX, AppServerSignal, SignalContext, SignalSession, SignalType, request_id_string,
};

/// The fields of a payload that make a signal. Texts are [`Field`]s: a value of another JSON type counts as
/// absent, as `Value::as_str` would have it.
#[derive(Debug, Default)]
pub(crate) struct SignalFields<'a> {
    /// The payload was an object (anything else is no signal).
    is_object: bool,
    method: Option<Field<'a>>,
    signal_type: Option<Field<'a>>,
    event_type: Option<Field<'a>>,
    received_at: Option<Field<'a>>,
    context: Option<Pair<'a>>,
    session: Option<SessionFields<'a>>,
    params: Option<Value>,
    request_id: Option<Value>,
}

/// `context`: `threadId` and `turnId`, when it is an object.
#[derive(Debug, Default)]
struct Pair<'a> {
    thread_id: Option<Field<'a>>,
    turn_id: Option<Field<'a>>,
}

/// `session`, when it is an object.
#[derive(Debug, Default)]
struct SessionFields<'a> {
    id: Option<Field<'a>>,
    title: Option<Field<'a>>,
    project_id: Option<Field<'a>>,
}

fn text(field: Option<Field<'_>>) -> Option<String> {
    match field? {
        Field::Str(text) => Some(text.into_owned()),
        _ => None,
    }
}

impl SignalFields<'_> {
    /// The signal, with the envelope's `event_type` and `thread_id` where the payload lacks `eventType` or
    /// `context.threadId`; `None` when the payload is not an object with a `method` string.
    pub(crate) fn into_signal(self, event_type: &str, thread_id: Option<&str>) -> Option<AppServerSignal> {
        if !self.is_object {
            return None;
        }
        let method = text(self.method)?;
        let params = self.params.unwrap_or(Value::Null);
        let signal_type = match &self.signal_type {
            Some(Field::Str(kind)) => SignalType::parse(kind),
            _ if event_type.starts_with(APP_SERVER_REQUEST_PREFIX) => SignalType::Request,
            _ => SignalType::Notification,
        };
        let context = self.context.unwrap_or_default();
        Some(AppServerSignal {
            method,
            signal_type,
            event_type: text(self.event_type).unwrap_or_else(|| event_type.to_owned()),
            context: SignalContext {
                thread_id: text(context.thread_id).or_else(|| thread_id.map(str::to_owned)),
                turn_id: text(context.turn_id)
                    .or_else(|| params.get("turnId").and_then(Value::as_str).map(str::to_owned)),
            },
            request_id: self.request_id.and_then(|id| match id {
                Value::String(id) => Some(id),
                other => request_id_string(&other),
            }),
            session: self.session.and_then(|session| {
                Some(SignalSession {
                    id: text(session.id)?,
                    title: text(session.title),
                    project_id: text(session.project_id),
                })
            }),
            received_at: text(self.received_at),
            params,
        })
    }
}

/// Reads any JSON value with `visit_map` for objects; every other value is consumed and yields `T::default()`.
macro_rules! object_or_default {
    ($target:ident) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_seq(seq).map(|_| $target::default())
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($target::default())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($target::default())
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($target::default())
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($target::default())
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($target::default())
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($target::default())
        }
    };
}

impl<'de> Deserialize<'de> for SignalFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = SignalFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an app-server signal payload")
    }

    // A repeated key counts with its last value, as in a `Value`.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = SignalFields {
            is_object: true,
            ..SignalFields::default()
        };
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Method => fields.method = Some(map.next_value()?),
                Key::SignalType => fields.signal_type = Some(map.next_value()?),
                Key::EventType => fields.event_type = Some(map.next_value()?),
                Key::ReceivedAt => fields.received_at = Some(map.next_value()?),
                Key::Context => fields.context = map.next_value::<Object<Pair<'de>>>()?.0,
                Key::Session => fields.session = map.next_value::<Object<SessionFields<'de>>>()?.0,
                Key::Params => fields.params = Some(map.next_value()?),
                Key::RequestId => fields.request_id = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }

    object_or_default!(SignalFields);
}

/// A nested object's fields, or `None` when the value is not an object.
struct Object<T>(Option<T>);

impl<'de> Deserialize<'de> for Object<Pair<'de>> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PairVisitor)
    }
}

struct PairVisitor;

impl<'de> Visitor<'de> for PairVisitor {
    type Value = Object<Pair<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a signal context")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pair = Pair::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::ThreadId => pair.thread_id = Some(map.next_value()?),
                Key::TurnId => pair.turn_id = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Object(Some(pair)))
    }

    object_or_default!(Object);
}

impl<'de> Deserialize<'de> for Object<SessionFields<'de>> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SessionVisitor)
    }
}

struct SessionVisitor;

impl<'de> Visitor<'de> for SessionVisitor {
    type Value = Object<SessionFields<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a signal session")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut session = SessionFields::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => session.id = Some(map.next_value()?),
                Key::Title => session.title = Some(map.next_value()?),
                Key::ProjectId => session.project_id = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Object(Some(session)))
    }

    object_or_default!(Object);
}

impl<T> Default for Object<T> {
    fn default() -> Self {
        Object(None)
    }
}

/// Every key the payload, its context or its session may have that matters.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Key {
    Method,
    SignalType,
    EventType,
    ReceivedAt,
    Context,
    Session,
    Params,
    RequestId,
    ThreadId,
    TurnId,
    Id,
    Title,
    ProjectId,
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    /// The signal as read from a `Value` by looking fields up, the way it was done before this reader existed: the
    /// oracle both reading paths must match.
    fn oracle(event_type: &str, thread_id: Option<&str>, payload: &Value) -> Option<AppServerSignal> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let method = payload.get("method")?.as_str()?.to_owned();
        let context = payload.get("context");
        let params = payload.get("params").cloned().unwrap_or(Value::Null);
        let signal_type = match payload.get("signalType").and_then(Value::as_str) {
            Some(kind) => SignalType::parse(kind),
            None if event_type.starts_with(APP_SERVER_REQUEST_PREFIX) => SignalType::Request,
            None => SignalType::Notification,
        };
        Some(AppServerSignal {
            signal_type,
            event_type: text(payload.get("eventType")).unwrap_or_else(|| event_type.to_owned()),
            context: SignalContext {
                thread_id: text(context.and_then(|c| c.get("threadId"))).or_else(|| thread_id.map(str::to_owned)),
                turn_id: text(context.and_then(|c| c.get("turnId"))).or_else(|| text(params.get("turnId"))),
            },
            request_id: payload.get("requestId").and_then(request_id_string),
            session: payload.get("session").and_then(|s| {
                Some(SignalSession {
                    id: s.get("id")?.as_str()?.to_owned(),
                    title: text(s.get("title")),
                    project_id: text(s.get("projectId")),
                })
            }),
            received_at: text(payload.get("receivedAt")),
            params,
            method,
        })
    }

    fn payloads() -> Vec<Value> {
        let full = json!({
            "source": "app_server", "signalType": "request", "eventType": "app_server.request.item.tool.call",
            "method": "item/tool/call", "receivedAt": "2026-11-24T01:44:01.602Z",
            "context": {"threadId": "t-ctx", "turnId": "u-ctx", "extra": [1, {"a": null}]},
            "params": {"threadId": "t", "turnId": "u", "callId": "call_0", "tool": "echo", "arguments": {"text": "hi"}},
            "session": {"id": "s", "title": "New chat", "projectId": null}, "requestId": 1
        });
        let mut variants = vec![
            full.clone(),
            json!({"method": "item/started"}),
            json!({"method": "item/started", "params": {"turnId": "from-params"}}),
            json!({"method": 5, "params": {}}),
            json!({"params": {}}),
            json!({"method": "m", "signalType": 7, "eventType": null, "receivedAt": {"x": 1}}),
            json!({"method": "m", "signalType": "response"}),
            json!({"method": "m", "context": "not an object", "session": ["not", "an", "object"]}),
            json!({"method": "m", "context": {"threadId": 1, "turnId": null}}),
            json!({"method": "m", "session": {"title": "no id"}}),
            json!({"method": "m", "session": {"id": 3}}),
            json!({"method": "m", "requestId": "req-7"}),
            json!({"method": "m", "requestId": 2.5}),
            json!({"method": "m", "requestId": -3}),
            json!({"method": "m", "requestId": null}),
            json!({"method": "m", "requestId": [1]}),
            json!({"method": "m", "params": null}),
            json!({"method": "esc\"aped\\u00e9", "eventType": "t\\u0041b"}),
            json!("text"),
            json!(null),
            json!([{"method": "m"}]),
            json!(42),
        ];
        if let Value::Object(map) = &full {
            // Every field alone, and the payload without each field.
            for key in map.keys() {
                let mut without = map.clone();
                without.remove(key);
                variants.push(Value::Object(without));
                let mut alone = Map::new();
                alone.insert("method".into(), json!("m"));
                alone.insert(key.clone(), map[key].clone());
                variants.push(Value::Object(alone));
            }
        }
        variants
    }

    #[test]
    fn both_reading_paths_match_the_field_lookup_oracle() {
        for payload in payloads() {
            for (event_type, thread_id) in [
                ("app_server.request.item.tool.call", Some("t-env")),
                ("app_server.item.started", None),
            ] {
                let expected = oracle(event_type, thread_id, &payload);
                let from_value = AppServerSignal::from_owned_payload(event_type, thread_id, payload.clone());
                assert_eq!(from_value, expected, "from a Value: {payload}");
                let text = payload.to_string();
                let fields: SignalFields<'_> = serde_json::from_str(&text).unwrap();
                assert_eq!(fields.into_signal(event_type, thread_id), expected, "from text: {text}");
            }
        }
    }

    #[test]
    fn a_repeated_key_counts_with_its_last_value() {
        let text = r#"{"method":"first","context":{"threadId":"a"},"method":"second","context":{"turnId":"u"}}"#;
        let fields: SignalFields<'_> = serde_json::from_str(text).unwrap();
        let signal = fields.into_signal("app_server.x", Some("env")).unwrap();
        assert_eq!(signal.method, "second");
        assert_eq!(
            signal.context.thread_id.as_deref(),
            Some("env"),
            "the last context has no threadId"
        );
        assert_eq!(signal.context.turn_id.as_deref(), Some("u"));
    }

    #[test]
    fn malformed_json_inside_the_payload_is_an_error() {
        assert!(serde_json::from_str::<SignalFields<'_>>(r#"{"method":"m","context":{"threadId":}}"#).is_err());
        assert!(serde_json::from_str::<SignalFields<'_>>(r#"{"method":"m","params":[1,]}"#).is_err());
    }
}
