//! Cursor pagination of list endpoints (`?limit=&after=&order=`): pages in a stable order
//! (creation time, then id), and the cursor of the next page in the `X-Next-Cursor` header and
//! a `Link: <…>; rel="next"` header. A cursor is opaque to clients.

pub use crate::serve::page::{Cursor, Page};
use crate::serve::problem::ApiError;
use axum::http::{HeaderMap, HeaderValue, header};
use serde::Deserialize;
use utoipa::IntoParams;

/// Items per page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;
/// The most items one page may hold.
pub const MAX_PAGE: u32 = 1000;

/// The page a list request asks for.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1–1000; default 100).
    pub limit: Option<u32>,
    /// The `X-Next-Cursor` of the previous page.
    pub after: Option<String>,
    /// `asc` (oldest first, the default) or `desc` (newest first).
    pub order: Option<String>,
}

impl PageQuery {
    /// The page asked for, or a 400 naming the parameter.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_input(format!(
                "limit: must be 1–{MAX_PAGE}, got {limit}"
            )));
        }
        let after = match self.after.as_deref() {
            None | Some("") => None,
            Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
                ApiError::bad_input(format!(
                    "after: {:?} is not a cursor this server gave (use a page's X-Next-Cursor)",
                    kiln::error::cut_short(text)
                ))
            })?),
        };
        let newest_first = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ApiError::bad_input(format!(
                    "order: must be asc or desc, got {:?}",
                    kiln::error::cut_short(other)
                )));
            }
        };
        Ok(Page {
            limit,
            after,
            newest_first,
        })
    }
}

/// The headers that point at the page after `rows`, a full page of `path` read for `page` (none
/// when it was not full, so it was the last); `key` gives a row's creation time and id.
pub fn headers_after<T>(
    path: &str,
    page: &Page,
    rows: &[T],
    key: impl Fn(&T) -> (i64, &str),
) -> HeaderMap {
    let next = (rows.len() == page.limit as usize)
        .then(|| rows.last())
        .flatten()
        .map(|row| {
            let (created_at, id) = key(row);
            Cursor {
                created_at,
                id: id.to_string(),
            }
        });
    next_page_headers(path, page, next.as_ref(), "")
}

/// The headers that point at the next page of `path` (none when this page is the last).
pub fn next_page_headers(path: &str, page: &Page, next: Option<&Cursor>, extra: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(next) = next else {
        return headers;
    };
    let cursor = next.encode();
    let order = if page.newest_first { "desc" } else { "asc" };
    let link = format!(
        "<{path}?limit={}&after={cursor}&order={order}{extra}>; rel=\"next\"",
        page.limit
    );
    for (name, value) in [("x-next-cursor", cursor), (header::LINK.as_str(), link)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_bad_ones_are_400s() {
        let cursor = Cursor {
            created_at: 1_733_555_000_123,
            id: "trainingjob-0a1b".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["x", "12", "12.", "a.b", "1.../etc/passwd", "1.a b"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        let query = PageQuery {
            after: Some("nope".into()),
            ..Default::default()
        };
        assert!(query.page().is_err());
        let query = PageQuery {
            limit: Some(0),
            ..Default::default()
        };
        assert!(query.page().is_err());
        let page = PageQuery::default().page().unwrap();
        assert_eq!(
            (page.limit, page.after, page.newest_first),
            (100, None, false)
        );
    }
}
