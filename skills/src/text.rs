//! Text utilities: word statistics, URL slugs, upper case.

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::Serialize;
use skillbridge::skill;
use skillbridge::skill::SkillError;

/// The default longest slug, in characters.
const DEFAULT_SLUG_LENGTH: u32 = 60;

/// Counts of a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TextStats {
    /// Words, separated by whitespace.
    pub words: usize,
    /// Unicode characters, whitespace included.
    pub characters: usize,
    /// Lines (a final line without a newline counts).
    pub lines: usize,
    /// Distinct words, compared case-insensitively without surrounding punctuation (only when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_words: Option<usize>,
}

/// Counts the words, characters and lines of a text.
#[skill(title = "Word count", read_only, open_world = false, tags = ["text"])]
pub fn word_count(
    /// The text to measure.
    text: String,
    /// Also count distinct words (case-insensitive, punctuation around words ignored).
    unique: Option<bool>,
) -> TextStats {
    let unique_words = unique.unwrap_or(false).then(|| {
        text.split_whitespace()
            .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
            .filter(|word| !word.is_empty())
            .collect::<HashSet<_>>()
            .len()
    });
    TextStats {
        words: text.split_whitespace().count(),
        characters: text.chars().count(),
        lines: text.lines().count(),
        unique_words,
    }
}

/// Turns a title into a URL slug: lower-case ASCII words joined by a separator.
///
/// Common Latin accents are folded (`Crème Brûlée` → `creme-brulee`); other characters separate words.
#[skill(title = "Slugify", read_only, open_world = false, tags = ["text"])]
pub fn slugify(
    /// The text to turn into a slug.
    text: String,
    /// The longest slug to return, in characters (default 60); the slug is cut at a word boundary.
    max_length: Option<u32>,
    /// What joins the words (default `-`); one to three characters out of `-`, `_` and `.`.
    separator: Option<String>,
) -> Result<String, SkillError> {
    let separator = separator.unwrap_or_else(|| "-".to_owned());
    if separator.is_empty() || separator.len() > 3 || !separator.chars().all(|c| matches!(c, '-' | '_' | '.')) {
        return Err(format!("separator `{separator}` is not allowed: use one to three of `-`, `_` and `.`").into());
    }
    let max_length = max_length.unwrap_or(DEFAULT_SLUG_LENGTH) as usize;
    if max_length == 0 {
        return Err("max_length must be at least 1".into());
    }
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        match fold_latin(c) {
            Some(ascii) => folded.push_str(ascii),
            None if c.is_ascii_alphanumeric() => folded.push(c.to_ascii_lowercase()),
            None => folded.push(' '),
        }
    }
    let mut slug = String::new();
    for word in folded.split_whitespace() {
        let extra = if slug.is_empty() { 0 } else { separator.len() };
        if slug.len() + extra + word.len() > max_length {
            if slug.is_empty() {
                // A single word longer than the limit is cut rather than dropped.
                slug.push_str(&word[..max_length]);
            }
            break;
        }
        if !slug.is_empty() {
            slug.push_str(&separator);
        }
        slug.push_str(word);
    }
    if slug.is_empty() {
        return Err("the text has no letters or digits to make a slug from".into());
    }
    Ok(slug)
}

#[skill(
    description = "Converts a text to upper case (Unicode-aware: `straße` becomes `STRASSE`).",
    title = "Upper case",
    read_only,
    open_world = false,
    tags = ["text"]
)]
pub fn uppercase(
    /// The text to convert.
    text: String,
) -> String {
    text.to_uppercase()
}

/// The lower-case ASCII spelling of an accented Latin letter.
fn fold_latin(c: char) -> Option<&'static str> {
    let folded = match c.to_lowercase().next().unwrap_or(c) {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        _ => return None,
    };
    Some(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_characters_lines_and_unique_words() {
        let stats = word_count("The cat saw the dog.\nThe end".into(), Some(true));
        assert_eq!(
            stats,
            TextStats {
                words: 7,
                characters: 28,
                lines: 2,
                unique_words: Some(5)
            }
        );
        assert_eq!(word_count(String::new(), None).words, 0);
    }

    #[test]
    fn slugs_fold_accents_and_respect_the_limit() {
        assert_eq!(
            slugify("Crème Brûlée, à la carte!".into(), None, None).unwrap(),
            "creme-brulee-a-la-carte"
        );
        assert_eq!(
            slugify("Straße in Łódź".into(), None, Some("_".into())).unwrap(),
            "strasse_in_lodz"
        );
        assert_eq!(slugify("one two three".into(), Some(8), None).unwrap(), "one-two");
        assert_eq!(slugify("abcdefghij".into(), Some(4), None).unwrap(), "abcd");
    }

    #[test]
    fn slug_errors_explain() {
        assert!(
            slugify("!!!".into(), None, None)
                .unwrap_err()
                .to_string()
                .contains("no letters")
        );
        assert!(
            slugify("a b".into(), None, Some("/".into()))
                .unwrap_err()
                .to_string()
                .contains("separator")
        );
    }
}
