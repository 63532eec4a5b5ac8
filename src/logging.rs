//! Logs on stderr, freed of every credential given on the command line or in the
//! environment: a channel URL's password or token may reach a client library's own log
//! lines (async-nats prints its server address at debug level), which no redaction at the
//! call site can reach. Every line also has the credentials of any URL in it masked.

use std::io::{self, Write};
use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;
use weft_config::redact::Secrets;

/// The secrets of every URL in the arguments and in `WEFT_*` variables.
fn secrets() -> &'static Secrets {
    static SECRETS: OnceLock<Secrets> = OnceLock::new();
    SECRETS.get_or_init(|| {
        let env = std::env::vars_os()
            .filter(|(name, _)| name.to_string_lossy().starts_with("WEFT_"))
            .map(|(_, value)| value);
        let given: Vec<String> = std::env::args_os()
            .chain(env)
            .map(|text| text.to_string_lossy().into_owned())
            .filter(|text| text.contains("://"))
            .collect();
        Secrets::of_all(given.iter().map(String::as_str))
    })
}

/// `text` as it may be shown: known secrets and URL credentials masked.
pub fn scrub(text: &str) -> String {
    secrets().scrub(text).into_owned()
}

/// Writes log lines to stderr through [`scrub`]. The formatter hands over each event as
/// one write, so a secret is never split between two calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScrubbedStderr;

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedStderr
    }
}

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr().write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
