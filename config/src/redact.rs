//! Credentials kept out of everything Weft shows: logs, error messages, the admin API and
//! `weft get`. Channel URLs (`postgres://`, `nats://`, `kafka://`, several hosts each with
//! its own userinfo) and sink URLs (`http://user:secret@host/?token=…`) all go through
//! [`redact`] before they are shown; free text that may hold a URL (a backend's error, a
//! manifest problem) goes through [`redact_urls_in`], and text that may repeat a known
//! secret verbatim (librdkafka's log lines) through [`Secrets::scrub`].
//!
//! What counts as a secret:
//! - the password of a userinfo (`user:PASSWORD@host`), in every host of a multi-host URL;
//! - on `nats://` (and its `tls://`, `ws://`, `wss://` forms), a userinfo without a colon,
//!   which is a token (`nats://TOKEN@host`);
//! - the value of a query (or fragment) parameter whose name looks secret
//!   ([`is_secret_name`]: `password`, `passwd`, `pass`, `pwd`, `token`, `secret`, `key`,
//!   `auth`, `credential`, `signature`, `sig`, and names containing them such as
//!   `sasl.password`, `sslpassword`, `access_token`, `api_key`).
//!
//! Each is replaced by `***`; the rest of the URL (scheme, user, hosts, path, other
//! parameters) stays, so a reader still sees where Weft connects.

use std::borrow::Cow;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not searched for in free text by [`Secrets::scrub`]: a
/// one- or two-character password would turn every log line to stars and protects nothing.
/// [`redact`] masks them in URLs whatever their length.
const MIN_SCRUBBED_LEN: usize = 3;

/// A URL fit to show: passwords, tokens and secret query values become `***`. Text that is
/// not a URL (no `://`) comes back unchanged.
///
/// ```
/// use weft_config::redact::redact;
/// assert_eq!(
///     redact("nats://u:p1@h1:4222,u:p2@h2:4222?prefix=w"),
///     "nats://u:***@h1:4222,u:***@h2:4222?prefix=w"
/// );
/// assert_eq!(
///     redact("http://me:secret@sink/?token=abc&x=1"),
///     "http://me:***@sink/?token=***&x=1"
/// );
/// ```
pub fn redact(url: &str) -> String {
    let urls: Vec<String> = joined_urls(url).map(redact_one).collect();
    urls.join(",")
}

/// [`redact`] for one URL (which may still name several hosts in its authority).
fn redact_one(url: &str) -> String {
    let Some(parts) = Parts::split(url) else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(parts.scheme);
    out.push_str("://");
    for piece in authority_pieces(parts.scheme, parts.authority) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Secret(_) => out.push_str(MASK),
        }
    }
    out.push_str(parts.path);
    if let Some(query) = parts.query {
        out.push('?');
        push_params(&mut out, query);
    }
    if let Some(fragment) = parts.fragment {
        out.push('#');
        push_params(&mut out, fragment);
    }
    out
}

/// The URLs of a list written `nats://u:p@h1,nats://u:p@h2`: split at each `,` that a
/// `scheme://` follows. A single URL (even with several hosts) comes back whole.
fn joined_urls(text: &str) -> impl Iterator<Item = &str> {
    let mut starts = vec![0];
    for (comma, _) in text.match_indices(',') {
        let next = &text[comma + 1..];
        let scheme_len = next
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .unwrap_or(next.len());
        if scheme_len > 0 && next[scheme_len..].starts_with("://") {
            starts.push(comma + 1);
        }
    }
    let ends: Vec<usize> = starts[1..]
        .iter()
        .map(|s| s - 1)
        .chain([text.len()])
        .collect();
    starts.into_iter().zip(ends).map(move |(s, e)| &text[s..e])
}

/// `text` with every URL in it (a `scheme://…` run up to whitespace, a quote or a closing
/// bracket) passed through [`redact`]. Borrowed when nothing changed.
pub fn redact_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at + 3..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')' | ']' | '}')
            })
            .map_or(rest.len(), |i| at + 3 + i);
        let url = &rest[start..end];
        let shown = redact(url);
        changed |= shown != url;
        out.push_str(&rest[..start]);
        out.push_str(&shown);
        rest = &rest[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Whether a query parameter with this name holds a secret (compared without case).
pub fn is_secret_name(name: &str) -> bool {
    const WORDS: [&str; 9] = [
        "pass",
        "pwd",
        "token",
        "secret",
        "key",
        "auth",
        "credential",
        "signature",
        "bearer",
    ];
    let name = name.to_ascii_lowercase();
    name == "sig" || WORDS.iter().any(|word| name.contains(word))
}

/// The secrets one URL holds, to remove from text that may repeat them verbatim, such as
/// a client library's log lines or errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The passwords, tokens and secret query values in `url`, as written and
    /// percent-decoded.
    pub fn of(url: &str) -> Self {
        let mut found = Vec::new();
        for parts in joined_urls(url).filter_map(Parts::split) {
            for piece in authority_pieces(parts.scheme, parts.authority) {
                if let Piece::Secret(secret) = piece {
                    found.push(secret);
                }
            }
            for params in [parts.query, parts.fragment].into_iter().flatten() {
                for (name, value) in params.split('&').filter_map(|p| p.split_once('=')) {
                    if is_secret_name(name) {
                        found.push(value);
                    }
                }
            }
        }
        Self::from_values(found)
    }

    /// The secrets of several URLs together.
    pub fn of_all<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all = Secrets::default();
        for url in urls {
            for secret in Secrets::of(url).0 {
                if !all.0.contains(&secret) {
                    all.0.push(secret);
                }
            }
        }
        all.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all
    }

    /// Secrets given directly (e.g. a password read from elsewhere).
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<String> = Vec::new();
        for value in values {
            for form in [value.to_owned(), percent_decode(value)] {
                if form.len() >= MIN_SCRUBBED_LEN && !secrets.contains(&form) {
                    secrets.push(form);
                }
            }
        }
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Secrets(secrets)
    }

    /// Whether there is nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of a secret replaced by `***`, and every URL in it
    /// redacted. Borrowed when nothing changed.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = redact_urls_in(text);
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), MASK));
            }
        }
        text
    }
}

/// A URL cut at its delimiters: `scheme://authority path ?query #fragment`.
struct Parts<'a> {
    scheme: &'a str,
    authority: &'a str,
    /// From the first `/` after the authority, up to `?` or `#`; may be empty.
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let is_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !is_scheme {
            return None;
        }
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        // As URL parsers do: the authority ends at the first `/`.
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        Some(Parts {
            scheme,
            authority,
            path,
            query,
            fragment,
        })
    }
}

/// A run of an authority: shown as is, or a secret to mask.
enum Piece<'a> {
    Text(&'a str),
    Secret(&'a str),
}

/// Cuts an authority (`[user[:password]@]host[:port]`, possibly several joined by `,`)
/// into what is shown and what is secret. Each `@` ends a userinfo; it starts after the
/// previous host, i.e. after the last `,` that follows something shaped like a host.
fn authority_pieces<'a>(scheme: &str, authority: &'a str) -> Vec<Piece<'a>> {
    let token_scheme = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "nats" | "tls" | "ws" | "wss"
    );
    let mut pieces = Vec::new();
    let mut rest = authority;
    while let Some(at) = userinfo_end(rest) {
        let before = &rest[..at];
        // Hosts written before this userinfo (`h1:4222,user:pw@h2`) are kept; whatever
        // does not look like a host belongs to the userinfo (a password may hold a comma).
        let mut start = 0;
        for (i, _) in before.match_indices(',') {
            if before[start..i].split(',').all(looks_like_host) {
                start = i + 1;
            } else {
                break;
            }
        }
        let userinfo = &before[start..];
        pieces.push(Piece::Text(&rest[..start]));
        match userinfo.split_once(':') {
            Some((user, password)) => {
                pieces.push(Piece::Text(&userinfo[..user.len() + 1]));
                pieces.push(Piece::Secret(password));
            }
            None if token_scheme => pieces.push(Piece::Secret(userinfo)),
            None => pieces.push(Piece::Text(userinfo)),
        }
        pieces.push(Piece::Text("@"));
        rest = &rest[at + 1..];
        // The host after `@` runs to the next `,`; another userinfo may follow.
        match rest.find(',') {
            Some(comma) if rest[comma..].contains('@') => {
                pieces.push(Piece::Text(&rest[..=comma]));
                rest = &rest[comma + 1..];
            }
            _ => break,
        }
    }
    pieces.push(Piece::Text(rest));
    pieces
}

/// Where the first userinfo of `authority` ends: the first `@` followed by something
/// shaped like a host (up to the next `,`), else the last `@` (a password may hold an `@`
/// or a `,` left unescaped).
fn userinfo_end(authority: &str) -> Option<usize> {
    let mut last = None;
    for (at, _) in authority.match_indices('@') {
        let after = &authority[at + 1..];
        if looks_like_host(after.split(',').next().unwrap_or_default()) {
            return Some(at);
        }
        last = Some(at);
    }
    last
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn looks_like_host(text: &str) -> bool {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        match v6.split_once(']') {
            Some((_, after)) => ("v6", after.strip_prefix(':')),
            None => return false,
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '%'));
    host_ok && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Appends `params` (`a=1&token=x`), masking the values of secret names.
fn push_params(out: &mut String, params: &str) {
    for (i, pair) in params.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(pair),
        }
    }
}

/// `%XX` escapes decoded (invalid ones and non-UTF-8 results left as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                // Both digits were checked just above.
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_passwords_are_masked() {
        assert_eq!(
            redact("postgres://weft:s3cret@db:5432/weft?lease=PT10S"),
            "postgres://weft:***@db:5432/weft?lease=PT10S"
        );
        assert_eq!(
            redact("kafka://user:password@k1:9092,k2:9092?prefix=p"),
            "kafka://user:***@k1:9092,k2:9092?prefix=p"
        );
        assert_eq!(
            redact("http://user:secret@host/path?x=1"),
            "http://user:***@host/path?x=1"
        );
        // A password with the characters that end a host or a userinfo elsewhere.
        assert_eq!(
            redact("nats://u:p,w:x@h1:4222"),
            "nats://u:***@h1:4222",
            "a comma in the password"
        );
        assert_eq!(redact("postgres://u:@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn every_host_of_a_multi_host_url_is_masked() {
        assert_eq!(
            redact("nats://u:p1@h1:4222,u:p2@h2:4222,h3:4222"),
            "nats://u:***@h1:4222,u:***@h2:4222,h3:4222"
        );
        assert_eq!(
            redact("nats://h0:4222,u:p2@h2:4222"),
            "nats://h0:4222,u:***@h2:4222"
        );
        assert_eq!(
            redact("nats://[::1]:4222,u:pw@[::2]:4222"),
            "nats://[::1]:4222,u:***@[::2]:4222"
        );
    }

    #[test]
    fn every_url_of_a_list_is_masked() {
        let list = "nats://u:pw1@h1:4222,nats://tok2@h2:4222,tls://u:pw3@h3:4222";
        assert_eq!(
            redact(list),
            "nats://u:***@h1:4222,nats://***@h2:4222,tls://u:***@h3:4222"
        );
        let secrets = Secrets::of(list);
        assert_eq!(secrets.scrub("pw1 tok2 pw3"), "*** *** ***");
    }

    #[test]
    fn nats_tokens_are_masked_but_plain_user_names_are_not() {
        assert_eq!(redact("nats://s3cr3t@h:4222"), "nats://***@h:4222");
        assert_eq!(
            redact("nats://tok1@h1:4222,tok2@h2:4222"),
            "nats://***@h1:4222,***@h2:4222"
        );
        assert_eq!(redact("postgres://weft@db/weft"), "postgres://weft@db/weft");
        assert_eq!(redact("http://me@sink/"), "http://me@sink/");
    }

    #[test]
    fn secret_query_and_fragment_values_are_masked() {
        assert_eq!(
            redact("postgres://db/weft?user=w&password=p&sslpassword=k&sslmode=require"),
            "postgres://db/weft?user=w&password=***&sslpassword=***&sslmode=require"
        );
        assert_eq!(
            redact("kafka://k:9092?sasl.password=x&prefix=weft"),
            "kafka://k:9092?sasl.password=***&prefix=weft"
        );
        assert_eq!(
            redact("nats://h:4222?token=t&auth_token=u&prefix=w"),
            "nats://h:4222?token=***&auth_token=***&prefix=w"
        );
        assert_eq!(
            redact("https://sink/hook?Access_Token=a&sig=b&api_key=c&pass=d&passwd=e&secret=f"),
            "https://sink/hook?Access_Token=***&sig=***&api_key=***&pass=***&passwd=***&secret=***"
        );
        assert_eq!(
            redact("http://sink/#access_token=a&state=s"),
            "http://sink/#access_token=***&state=s"
        );
        // A parameter without a value, or a path with an `@`, is not a secret.
        assert_eq!(redact("http://sink/a@b?token"), "http://sink/a@b?token");
    }

    #[test]
    fn what_is_not_a_url_is_unchanged() {
        for text in [
            "not a url",
            "",
            "memory://",
            "sqlite:///tmp/a@b/weft.db",
            "kafka://k:9092",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn urls_inside_text_are_masked() {
        let text = "\"http://u:pw@sink/?token=abc\" is not valid; try (nats://tok@h:1) instead";
        assert_eq!(
            redact_urls_in(text),
            "\"http://u:***@sink/?token=***\" is not valid; try (nats://***@h:1) instead"
        );
        assert!(matches!(redact_urls_in("plain text"), Cow::Borrowed(_)));
        assert!(matches!(
            redact_urls_in("see http://sink/x"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn secrets_are_found_and_scrubbed_from_free_text() {
        let secrets = Secrets::of("kafka://alice:pa%24%24word@k1:9092,k2:9092?sasl.password=other");
        let line = "sasl: authentication for alice with pa$$word failed; other too";
        assert_eq!(
            secrets.scrub(line),
            "sasl: authentication for alice with *** failed; *** too"
        );
        assert_eq!(secrets.scrub("nothing secret"), "nothing secret");
        assert!(Secrets::of("nats://h:4222").is_empty());
        let both = Secrets::of_all(["nats://tok111@h:1", "postgres://u:pw222@h/db"]);
        assert_eq!(both.scrub("tok111 and pw222"), "*** and ***");
        assert!(!Secrets::of("nats://token123@h:4222").is_empty());
        // Too short to search for, yet still masked inside URLs.
        let short = Secrets::of("postgres://u:ab@h/db");
        assert_eq!(short.scrub("a b c"), "a b c");
        assert_eq!(
            short.scrub("to postgres://u:ab@h/db"),
            "to postgres://u:***@h/db"
        );
    }
}
