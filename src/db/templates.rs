//! Templates as stored, parsed once: executions of one workflow share one template.
//!
//! Every execution row stores its template as JSON text, and many executions run the
//! same template. Parsing it for each execution read would give each its own copy (a
//! 20-node template is about 13 KiB parsed), held as long as the execution is (e.g. by
//! the change hub for its watchers). Here the parsed templates of recent texts are kept,
//! so that every execution read with the same text shares one [`Template`] and skips the
//! parse.

use std::sync::{Arc, LazyLock};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::domain::Template;
use crate::error::{Error, OrInternal};

/// Bytes of templates kept, each weighed at four times its text: the text as key, and
/// about three times as much parsed (a 20-node template took about 13 KiB parsed in
/// the heap profile of `loadgen mixed`, BENCHMARKS.md).
const CAPACITY_BYTES: u64 = 8 << 20;
/// Expected number of distinct templates, for sizing.
const EXPECTED_TEMPLATES: usize = 1_024;

#[derive(Clone)]
struct TextSize;

impl Weighter<Box<str>, Arc<Template>> for TextSize {
    fn weight(&self, text: &Box<str>, _template: &Arc<Template>) -> u64 {
        4 * text.len() as u64 + 64
    }
}

type ParsedTemplates = Cache<Box<str>, Arc<Template>, TextSize>;

fn parsed_templates() -> ParsedTemplates {
    Cache::with_weighter(EXPECTED_TEMPLATES, CAPACITY_BYTES, TextSize)
}

/// The parsed templates of recent texts (process-wide, as the texts are: a template is
/// the same whichever pool or replica read it).
static PARSED: LazyLock<ParsedTemplates> = LazyLock::new(parsed_templates);

/// The template a stored text holds, shared with every other execution read with the
/// same text.
pub(super) fn parse(text: &str) -> Result<Arc<Template>, Error> {
    parse_in(&PARSED, text)
}

fn parse_in(parsed: &ParsedTemplates, text: &str) -> Result<Arc<Template>, Error> {
    if let Some(template) = parsed.get(text) {
        return Ok(template);
    }
    let template: Arc<Template> = Arc::new(serde_json::from_str(text).or_internal()?);
    parsed.insert(text.into(), Arc::clone(&template));
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template::tests::diamond;

    #[test]
    fn one_text_is_parsed_into_one_shared_template() {
        let text = serde_json::to_string(&diamond()).unwrap();
        let (first, second) = (parse(&text).unwrap(), parse(&text).unwrap());
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*first, diamond());
        let mut wider = diamond();
        wider.width += 1.0;
        let other = parse(&serde_json::to_string(&wider).unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(*other, wider);
    }

    #[test]
    fn the_parsed_templates_kept_stay_within_their_budget() {
        // A cache of its own: the process-wide one serves the other tests meanwhile.
        let parsed = parsed_templates();
        let mut template = diamond();
        for width in 0..10_000 {
            template.width = f64::from(width);
            parse_in(&parsed, &serde_json::to_string(&template).unwrap()).unwrap();
        }
        assert!(parsed.weight() <= CAPACITY_BYTES, "{}", parsed.weight());
        assert!(parsed.len() < 10_000);
    }

    #[test]
    fn a_text_that_is_not_a_template_is_an_internal_error() {
        assert!(matches!(
            parse("{\"nodes\": 1}"),
            Err(Error::Internal { .. })
        ));
    }
}
