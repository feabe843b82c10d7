//! Suggestions for a misspelt name: the closest allowed one, when it is close enough.

/// The closest allowed name, when it is close enough to be a plausible typo. A name over 64
/// characters is no typo of one (and comparing it would cost time in proportion to its length).
pub(crate) fn did_you_mean(given: &str, allowed: &[String]) -> Option<String> {
    if given.len() > 64 {
        return None;
    }
    allowed
        .iter()
        .map(|name| (strsim::normalized_damerau_levenshtein(given, name), name))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name.clone())
}
