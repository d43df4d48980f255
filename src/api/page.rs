//! Cursor pagination, one rule for every list: `limit` (1–100) and `starting_after` (the last
//! id of the previous page) in, `data`, `has_more` and `next_cursor` out. A store query asks
//! for one row more than the page; whether it came back is `has_more`.

use super::error::ApiError;

/// The largest page.
pub const MAX_LIMIT: i64 = 100;

/// The page size `raw` asks for, `default` when absent.
pub fn limit(raw: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                "limit",
                format!("`limit` must be an integer from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// Cuts `rows` (fetched with `limit + 1`) to the page: the rows, whether more follow, and the
/// cursor of the next page (`id` of the last row) when they do.
pub fn cut<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, bool, Option<String>) {
    let page = usize::try_from(limit).unwrap_or(0);
    let has_more = rows.len() > page;
    rows.truncate(page);
    let next = if has_more { rows.last().map(&id) } else { None };
    (rows, has_more, next)
}

/// The error for a cursor that names nothing this caller may list.
pub fn unknown_cursor(what: &str) -> ApiError {
    ApiError::invalid(
        "starting_after",
        format!("`starting_after` is not one of the {what} listed here"),
    )
}
