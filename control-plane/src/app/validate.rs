//! Field-level validation shared by the operations. Each check names the
//! field (as a path into the request) in its error.

use berth_api::Tags;

use super::{AppError, AppResult};

/// Names of clusters, families, accounts: 1-255 of `[A-Za-z0-9_-]`.
pub fn name(field: &str, value: &str) -> AppResult<()> {
    if value.is_empty() || value.len() > 255 {
        return Err(AppError::validation(field, format!("{field} must be 1-255 characters long")));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(AppError::validation(
            field,
            format!("{field} may contain only letters, digits, hyphens and underscores, got {value:?}"),
        ));
    }
    Ok(())
}

pub const MAX_TAGS: usize = 50;

/// Tags: at most 50, keys 1-128 characters, values up to 256, and the
/// `berth:` prefix reserved for the system.
pub fn tags(field: &str, tags: &Tags) -> AppResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(AppError::validation(field, format!("at most {MAX_TAGS} tags are allowed, got {}", tags.len())));
    }
    for (k, v) in tags {
        let path = format!("{field}.{k}");
        if k.is_empty() || k.chars().count() > 128 {
            return Err(AppError::validation(path, "tag keys must be 1-128 characters long"));
        }
        if k.starts_with("berth:") {
            return Err(AppError::validation(path, "the tag prefix \"berth:\" is reserved"));
        }
        if v.chars().count() > 256 {
            return Err(AppError::validation(path, "tag values must be at most 256 characters long"));
        }
    }
    Ok(())
}

/// Free text with a length cap and no control characters.
pub fn text(field: &str, value: &str, max_chars: usize) -> AppResult<()> {
    if value.chars().count() > max_chars {
        return Err(AppError::validation(field, format!("{field} must be at most {max_chars} characters long")));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::validation(field, format!("{field} must not contain control characters")));
    }
    Ok(())
}

/// Host attributes: names usable in placement expressions, values of printable text.
pub fn attribute(field: &str, key: &str, value: &str) -> AppResult<()> {
    let ok_key = !key.is_empty()
        && key.len() <= 128
        && key.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
    if !ok_key {
        return Err(AppError::validation(
            field,
            "attribute names are 1-128 of letters, digits and _.:/- starting with a letter",
        ));
    }
    text(field, value, 256)
}
