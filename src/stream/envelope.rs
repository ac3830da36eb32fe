//! One pass over a frame's top level: `type`, `threadId` and `message` as found, the payload built into a
//! `Value`, read straight into an app-server signal's fields, or only checked; every other key skipped. [`parse_frame`](super::parse_frame) and the socket task's
//! [`screen_frame`](super::frame::screen_frame) both read frames through this, so they agree on what is malformed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::frame::FrameError;
use super::signal_fields::SignalFields;

/// The top level of a frame.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub(crate) kind: Field<'a>,
    pub(crate) thread_id: Field<'a>,
    pub(crate) message: Field<'a>,
    pub(crate) payload: Payload<'a>,
}

/// What to do with a frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Check that it is JSON; build nothing.
    Skip,
    /// Build it as a `Value`.
    Value,
    /// Read it into the fields of an app-server signal.
    Signal,
}

/// What became of the `payload` key.
// Moved once per frame; boxing the large variant would cost an allocation per tool call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Payload<'a> {
    /// The frame has none.
    Absent,
    /// Built.
    Built(Value),
    /// Read as a signal.
    Signal(SignalFields<'a>),
    /// Checked to be JSON, not built.
    Skipped,
}

/// A JSON value where a string is expected: the string (borrowed from the frame when it has no escapes), `null`,
/// or anything else (checked, not kept).
#[derive(Debug, PartialEq)]
pub(crate) enum Field<'a> {
    Absent,
    Null,
    Str(Cow<'a, str>),
    Other,
}

/// Reads the envelope of `text`; `Ok(None)` when it is JSON but not an object. The payload follows `plan(type)`
/// when the type comes first, `unknown` when the payload comes before the type.
pub(crate) fn read_envelope<'a>(
    text: &'a str,
    plan: &dyn Fn(&str) -> Plan,
    unknown: Plan,
) -> Result<Option<Envelope<'a>>, FrameError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope = deserializer.deserialize_any(EnvelopeVisitor { plan, unknown })?;
    deserializer.end()?;
    Ok(envelope)
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Field::Other)
    }
}

/// The top-level keys that matter.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Key {
    Type,
    ThreadId,
    Message,
    Payload,
    #[serde(other)]
    Other,
}

/// `Some(envelope)` for an object, `None` for any other JSON value.
struct EnvelopeVisitor<'p> {
    plan: &'p dyn Fn(&str) -> Plan,
    unknown: Plan,
}

impl EnvelopeVisitor<'_> {
    fn payload_plan(&self, kind: &Field<'_>) -> Plan {
        match kind {
            Field::Absent => self.unknown,
            Field::Str(kind) => (self.plan)(kind),
            Field::Null | Field::Other => Plan::Skip,
        }
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = Option<Envelope<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope {
            kind: Field::Absent,
            thread_id: Field::Absent,
            message: Field::Absent,
            payload: Payload::Absent,
        };
        // A repeated key counts with its last value, as when the frame is read into a `Value`.
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => envelope.kind = map.next_value()?,
                Key::ThreadId => envelope.thread_id = map.next_value()?,
                Key::Message => envelope.message = map.next_value()?,
                Key::Payload => {
                    envelope.payload = match self.payload_plan(&envelope.kind) {
                        Plan::Value => Payload::Built(map.next_value()?),
                        Plan::Signal => Payload::Signal(map.next_value()?),
                        Plan::Skip => {
                            map.next_value::<IgnoredAny>()?;
                            Payload::Skipped
                        }
                    };
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(envelope))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Envelope<'_> {
        let plan = |kind: &str| match kind {
            "wanted" => Plan::Value,
            "signal" => Plan::Signal,
            _ => Plan::Skip,
        };
        read_envelope(text, &plan, Plan::Skip).unwrap().unwrap()
    }

    #[test]
    fn payload_follows_the_plan_of_a_type_seen_first() {
        assert!(matches!(
            read(r#"{"type":"wanted","payload":{"a":[1,2]}}"#).payload,
            Payload::Built(value) if value == serde_json::json!({"a": [1, 2]})
        ));
        let Payload::Signal(fields) = read(r#"{"type":"signal","payload":{"method":"m/x"}}"#).payload else {
            panic!("not read as a signal")
        };
        assert_eq!(fields.into_signal("signal", None).unwrap().method, "m/x");
        assert!(matches!(
            read(r#"{"type":"other","payload":{"a":1}}"#).payload,
            Payload::Skipped
        ));
        assert!(matches!(
            read(r#"{"payload":{"a":1},"type":"wanted"}"#).payload,
            Payload::Skipped
        ));
        assert!(matches!(read(r#"{"type":"wanted"}"#).payload, Payload::Absent));
    }

    #[test]
    fn fields_borrow_unless_escaped_and_last_duplicate_wins() {
        let envelope = read(r#"{"type":"a","type":"b\"c","threadId":null,"message":7,"x":{"y":[]}}"#);
        assert_eq!(envelope.kind, Field::Str(Cow::Owned("b\"c".into())));
        assert!(matches!(
            read(r#"{"type":"plain"}"#).kind,
            Field::Str(Cow::Borrowed("plain"))
        ));
        assert_eq!(envelope.thread_id, Field::Null);
        assert_eq!(envelope.message, Field::Other);
    }

    #[test]
    fn skipped_parts_are_still_checked() {
        assert!(read_envelope(r#"{"type":"other","payload":{"a":}}"#, &|_| Plan::Skip, Plan::Skip).is_err());
        assert!(read_envelope(r#"{"type":"other","x":[1,}"#, &|_| Plan::Skip, Plan::Skip).is_err());
        assert!(read_envelope(r#"{"type":"other"} trailing"#, &|_| Plan::Skip, Plan::Skip).is_err());
        assert!(read_envelope("[1,2]", &|_| Plan::Skip, Plan::Skip).unwrap().is_none());
        assert!(
            read_envelope("\"text\"", &|_| Plan::Skip, Plan::Skip)
                .unwrap()
                .is_none()
        );
    }
}
