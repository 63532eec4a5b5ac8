//! Fuzzes the CESQL compiler and evaluator: no input may panic, overflow the stack or hang.
//!
//! The input is an expression, optionally followed by a newline and a value that becomes
//! the event's `x` extension, so the fuzzer also explores what functions and LIKE do with
//! odd text. For every expression that compiles, `matches` must agree with `evaluate`, and
//! wrapping the expression in parentheses must not change what it evaluates to.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_config::filter::cesql::{Expression, Value};
use weft_config::{AttributeValue, Event};

fn events(x: &str) -> Vec<Event> {
    let mut plain = Event::new("id", "/source", "com.example.type").expect("valid event");
    plain
        .set_subject(Some("sübjéct ✓".into()))
        .expect("valid subject");
    let mut typed = plain.clone();
    for (name, value) in [
        ("x", AttributeValue::String(x.to_owned())),
        ("n", AttributeValue::Integer(i32::MIN)),
        ("m", AttributeValue::Integer(i32::MAX)),
        ("b", AttributeValue::Boolean(true)),
        ("s", AttributeValue::String("-17".into())),
    ] {
        typed.set_extension(name, value).expect("valid extension");
    }
    vec![plain, typed]
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (source, x) = input.split_once('\n').unwrap_or((input, "12"));
    let Ok(expression) = Expression::compile(source) else {
        return;
    };
    // Only fails when the extra level goes past the nesting limit.
    let wrapped = Expression::compile(&format!("({source})")).ok();
    for event in events(x) {
        let evaluation = expression.evaluate(&event);
        let passes = evaluation.error.is_none() && evaluation.value == Value::Boolean(true);
        assert_eq!(expression.matches(&event), passes, "{source:?}");
        if let Some(wrapped) = &wrapped {
            assert_eq!(wrapped.evaluate(&event), evaluation, "({source:?})");
        }
    }
});
