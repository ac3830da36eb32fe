//! [`SkillError`]: the error type a skill can return to tell the model why it failed.

use std::error::Error as StdError;
use std::fmt;

/// An error a skill returns; the model sees its message in a `success: false` result.
///
/// Any `Result<T, E>` with `E: Display` works as a skill's return type; `SkillError` is a convenient `E`
/// that converts from messages and from every error type, so `?` works on `std::io::Error`,
/// `serde_json::Error`, `anyhow::Error` and friends. The message shown is the error followed by its
/// causes (`outer: inner: root`).
///
/// Like `anyhow::Error` (and for the same coherence reason) it does not itself implement
/// `std::error::Error`.
///
/// ```
/// use skillbridge::skill::SkillError;
///
/// fn parse_port(text: &str) -> Result<u16, SkillError> {
///     if text.is_empty() {
///         return Err("the port is empty".into());
///     }
///     let port: u16 = text.parse()?; // ParseIntError converts
///     if port == 0 {
///         return Err(SkillError::new(format!("port {port} is reserved")));
///     }
///     Ok(port)
/// }
///
/// assert_eq!(parse_port("").unwrap_err().to_string(), "the port is empty");
/// assert_eq!(parse_port("x").unwrap_err().to_string(), "invalid digit found in string");
/// assert_eq!(parse_port("0").unwrap_err().to_string(), "port 0 is reserved");
/// assert_eq!(parse_port("8080").unwrap(), 8080);
/// ```
pub struct SkillError {
    inner: Box<dyn StdError + Send + Sync + 'static>,
}

impl SkillError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            inner: message.into().into(),
        }
    }

    /// The same error with `context` in front of its message (`context: message`).
    ///
    /// ```
    /// # use skillbridge::skill::SkillError;
    /// let error = SkillError::new("no such file").context("cannot open notes.db");
    /// assert_eq!(error.to_string(), "cannot open notes.db: no such file");
    /// ```
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self::new(format!("{context}: {self}"))
    }

    /// The underlying error (the message as an error when built from a string).
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }
}

impl<E> From<E> for SkillError
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        Self { inner: error.into() }
    }
}

impl fmt::Display for SkillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)?;
        let mut source = self.inner.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for SkillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SkillError").field(&self.to_string()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading the table failed")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn message_includes_the_cause_chain() {
        let error = SkillError::from(Outer(std::io::Error::other("disk on fire")));
        assert_eq!(error.to_string(), "reading the table failed: disk on fire");
    }

    #[test]
    fn converts_from_anyhow_keeping_context() {
        let error = SkillError::from(anyhow::anyhow!("root cause").context("while looking up"));
        assert_eq!(error.to_string(), "while looking up: root cause");
    }

    #[test]
    fn debug_shows_the_message() {
        assert_eq!(format!("{:?}", SkillError::new("nope")), r#"SkillError("nope")"#);
    }
}
