//! The FIFO stream decoder: reassembly across any chunking, the size bound,
//! the resynchronisation rule, and no panic on any bytes.

use proptest::prelude::*;
use vmpower_proto::json::{JsonError, JsonStreamDecoder, StreamError, parse_request};
use vmpower_proto::{Request, RequestBody};

/// PROTOCOL.md's two examples as one FIFO stream, verbatim.
const GUIDE_STREAM: &str = r#"{"policy": {"name": "ubuntu", "command": "create", "policy_type": "TIME",
  "busy_hours": [17, 18, 19, 20, 21, 22, 23], "quiet_hours": [2, 3, 4, 5, 6],
  "core_list": [11]}}
{"instruction": {"name": "ubuntu", "command": "power", "unit": "SCALE_MAX",
  "resource_id": 10}}
"#;

const INSTRUCTION: &str = r#"{"instruction": {"name": "vm2", "command": "power", "unit": "SCALE_MIN", "resource_id": 3}}"#;

type Item = Result<Request, StreamError>;

/// The two requests of the guide, parsed one object at a time.
fn guide_requests() -> Vec<Request> {
    let (policy, instruction) =
        GUIDE_STREAM.split_at(GUIDE_STREAM.find("\n{").expect("two objects"));
    vec![
        parse_request(policy).expect("guide policy"),
        parse_request(instruction).expect("guide instruction"),
    ]
}

fn instruction() -> Request {
    parse_request(INSTRUCTION).expect("valid instruction")
}

/// Feeds `chunks` in order, draining after each, and returns every item.
fn decode_chunks<'a>(
    decoder: &mut JsonStreamDecoder,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Item> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(decoder.feed(chunk));
        assert!(
            decoder.buffered_len() <= decoder.max_object_len(),
            "bound broken"
        );
    }
    out
}

fn decode_all(bytes: &[u8]) -> Vec<Item> {
    decode_chunks(&mut JsonStreamDecoder::new(), [bytes])
}

fn ok(items: Vec<Item>) -> Vec<Request> {
    items
        .into_iter()
        .map(|i| i.expect("only valid messages"))
        .collect()
}

#[test]
fn guide_stream_one_byte_at_a_time() {
    let mut decoder = JsonStreamDecoder::new();
    let items = decode_chunks(&mut decoder, GUIDE_STREAM.as_bytes().chunks(1));
    assert_eq!(ok(items), guide_requests());
    assert_eq!(decoder.finish(), None);
}

#[test]
fn guide_stream_in_one_chunk() {
    assert_eq!(ok(decode_all(GUIDE_STREAM.as_bytes())), guide_requests());
}

#[test]
fn objects_back_to_back_without_whitespace() {
    let stream = format!("{INSTRUCTION}{INSTRUCTION}\r\n\t{INSTRUCTION}");
    assert_eq!(ok(decode_all(stream.as_bytes())), vec![instruction(); 3]);
}

#[test]
fn partial_object_needs_more_bytes_not_an_error() {
    let mut decoder = JsonStreamDecoder::new();
    let (head, tail) = INSTRUCTION.split_at(40);
    assert_eq!(decoder.feed(head.as_bytes()).count(), 0);
    assert_eq!(decoder.buffered_len(), 40);
    assert_eq!(
        ok(decoder.feed(tail.as_bytes()).collect()),
        vec![instruction()]
    );
    assert_eq!(decoder.buffered_len(), 0);
}

#[test]
fn brace_inside_a_string_does_not_end_an_object() {
    let text = r#"{"policy": {"name": "a}b", "command": "destroy"}}"#;
    let cut = text.find('}').expect("brace in the name") + 1;
    let mut decoder = JsonStreamDecoder::new();
    assert_eq!(decoder.feed(&text.as_bytes()[..cut]).count(), 0);
    assert_eq!(decoder.buffered_len(), cut);
    let items: Vec<Item> = decoder.feed(&text.as_bytes()[cut..]).collect();
    assert_eq!(ok(items), vec![parse_request(text).expect("valid")]);
}

#[test]
fn garbage_between_two_objects_is_reported_once_and_skipped() {
    let stream = format!("{INSTRUCTION}\nhello, world]] 42 \"x\"\n{INSTRUCTION}\n");
    let items = decode_all(stream.as_bytes());
    let garbage_at = u64::try_from(INSTRUCTION.len() + 1).expect("small");
    assert_eq!(
        items,
        vec![
            Ok(instruction()),
            Err(StreamError {
                offset: garbage_at,
                error: JsonError::Garbage { found: b'h' }
            }),
            Ok(instruction()),
        ]
    );
    let e = items[1].as_ref().expect_err("garbage");
    assert_eq!(
        e.to_string(),
        format!(
            "stream byte {garbage_at}: expected '{{' starting an object, found 'h'; skipping to the next '{{'"
        )
    );
}

#[test]
fn garbage_is_skipped_the_same_way_one_byte_at_a_time() {
    let stream = format!("\x00\x01junk\n{INSTRUCTION}");
    let mut decoder = JsonStreamDecoder::new();
    let items = decode_chunks(&mut decoder, stream.as_bytes().chunks(1));
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(
        &items[0],
        Err(StreamError {
            offset: 0,
            error: JsonError::Garbage { found: 0 }
        })
    ));
    assert_eq!(items[1], Ok(instruction()));
    assert_eq!(
        decoder.stream_len(),
        u64::try_from(stream.len()).expect("small")
    );
}

#[test]
fn writer_dying_mid_object_loses_only_its_own_object() {
    let truncated = r#"{"policy": {"name": "a", "command": "create", "busy_hours": [1, 2"#;
    let stream = format!("{truncated}{INSTRUCTION}\n");
    let items = decode_all(stream.as_bytes());
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(
        &items[0],
        Err(StreamError {
            offset: 0,
            error: JsonError::Syntax { .. }
        })
    ));
    assert_eq!(items[1], Ok(instruction()));
}

#[test]
fn syntax_error_inside_an_object_resumes_at_the_next_brace() {
    let stream = format!("{{\"policy\": {{\"name\" 5, \"command\": \"create\"}}}}\n{INSTRUCTION}");
    let items = decode_all(stream.as_bytes());
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(
        &items[0],
        Err(StreamError {
            error: JsonError::Syntax { line: 1, .. },
            ..
        })
    ));
    assert_eq!(items[1], Ok(instruction()));
}

#[test]
fn invalid_request_in_valid_json_is_consumed_whole() {
    let bad = r#"{"policy": {"name": "a", "command": "create", "policy_type": "NOPE", "core_list": [{}]}}"#;
    let stream = format!("{bad}\n{INSTRUCTION}");
    let items = decode_all(stream.as_bytes());
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(&items[0], Err(StreamError { offset: 0, error: JsonError::BadValue { key, .. } })
        if key == "policy.policy_type")
    );
    assert_eq!(items[1], Ok(instruction()));
}

#[test]
fn incomplete_object_past_the_limit_is_dropped_then_the_stream_resumes() {
    let big = format!(
        r#"{{"policy": {{"name": "a", "command": "create", "mac_list": ["{}"]}}}}"#,
        "x".repeat(300)
    );
    let stream = format!("{big}\n{INSTRUCTION}");
    let mut decoder = JsonStreamDecoder::with_max_object_len(128);
    let items = decode_chunks(&mut decoder, stream.as_bytes().chunks(10));
    assert_eq!(
        items,
        vec![
            Err(StreamError {
                offset: 0,
                error: JsonError::ObjectTooLarge { limit: 128 }
            }),
            Ok(instruction()),
        ]
    );
}

#[test]
fn complete_object_past_the_limit_is_refused_whole() {
    let big = format!(
        r#"{{"policy": {{{}"name": "a", "command": "destroy"}}}}"#,
        " ".repeat(200)
    );
    assert!(parse_request(&big).is_ok(), "valid, only too long");
    let stream = format!("{big}{INSTRUCTION}");
    let mut decoder = JsonStreamDecoder::with_max_object_len(INSTRUCTION.len());
    let items = decode_chunks(&mut decoder, [stream.as_bytes()]);
    let limit = INSTRUCTION.len();
    assert_eq!(
        items,
        vec![
            Err(StreamError {
                offset: 0,
                error: JsonError::ObjectTooLarge { limit }
            }),
            Ok(instruction())
        ]
    );
}

#[test]
fn finish_drops_a_partial_object() {
    let mut decoder = JsonStreamDecoder::new();
    assert_eq!(decoder.feed(b"  {\"instruction\": {").count(), 0);
    assert_eq!(
        decoder.finish(),
        Some(StreamError {
            offset: 2,
            error: JsonError::Truncated { len: 17 }
        })
    );
    assert_eq!(decoder.buffered_len(), 0);
    // The next writer's object is read from scratch, not appended.
    assert_eq!(
        ok(decoder.feed(INSTRUCTION.as_bytes()).collect()),
        vec![instruction()]
    );
    assert_eq!(decoder.finish(), None);
}

#[test]
fn finish_after_garbage_reports_nothing_more() {
    let mut decoder = JsonStreamDecoder::new();
    let items: Vec<Item> = decoder.feed(b"junk").collect();
    assert_eq!(items.len(), 1);
    assert_eq!(decoder.finish(), None);
    assert_eq!(
        ok(decoder.feed(INSTRUCTION.as_bytes()).collect()),
        vec![instruction()]
    );
}

#[test]
fn offsets_count_every_byte_pushed() {
    let stream = format!("{INSTRUCTION}\n{INSTRUCTION}\n  {{\"nope\": 1}}");
    let items = decode_all(stream.as_bytes());
    let third = u64::try_from(2 * (INSTRUCTION.len() + 1) + 2).expect("small");
    assert_eq!(
        items[2],
        Err(StreamError {
            offset: third,
            error: JsonError::UnknownTopLevel("nope".into())
        })
    );
}

#[test]
fn remove_policy_in_upper_case_through_the_stream() {
    let items = decode_all(br#"{"policy": {"name": "ubuntu", "command": "DESTROY"}}"#);
    assert_eq!(items.len(), 1);
    assert!(matches!(
        &items[0],
        Ok(Request {
            body: RequestBody::RemovePolicy,
            ..
        })
    ));
}

/// Splits `bytes` at the given cut points (taken modulo the length).
fn split_at_points(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|c| *c %= bytes.len() + 1);
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::new();
    let mut last = 0;
    for c in cuts {
        chunks.push(&bytes[last..c]);
        last = c;
    }
    chunks.push(&bytes[last..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunking_gives_the_same_messages(cuts in prop::collection::vec(any::<usize>(), 0..40)) {
        let stream = GUIDE_STREAM.as_bytes();
        let items = decode_chunks(&mut JsonStreamDecoder::new(), split_at_points(stream, cuts));
        prop_assert_eq!(ok(items), guide_requests());
    }

    #[test]
    fn any_chunking_gives_the_same_errors(cuts in prop::collection::vec(any::<usize>(), 0..40)) {
        let stream = format!(
            "{INSTRUCTION} junk {{\"policy\": {{\"name\": \"a\", \"busy_hours\": [1, 2{INSTRUCTION}\n{{\"x\": 1}}{INSTRUCTION}"
        );
        let whole = decode_all(stream.as_bytes());
        prop_assert_eq!(whole.len(), 6);
        let items = decode_chunks(&mut JsonStreamDecoder::new(), split_at_points(stream.as_bytes(), cuts));
        prop_assert_eq!(items, whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..32),
        max in 0usize..256,
    ) {
        let mut decoder = JsonStreamDecoder::with_max_object_len(max);
        let mut pushed = 0u64;
        for chunk in &chunks {
            pushed += u64::try_from(chunk.len()).expect("small");
            let items: Vec<Item> = decoder.feed(chunk).collect();
            for item in items {
                if let Err(e) = item {
                    prop_assert!(e.offset < pushed);
                }
            }
            prop_assert!(decoder.buffered_len() <= max);
        }
        prop_assert_eq!(decoder.stream_len(), pushed);
        let _ = decoder.finish();
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn garbage_without_a_brace_never_costs_the_next_object(
        garbage in prop::collection::vec(any::<u8>().prop_filter("no brace", |b| *b != b'{'), 0..200),
        chunk in 1usize..50,
    ) {
        let mut stream = garbage.clone();
        stream.push(b'\n');
        stream.extend_from_slice(INSTRUCTION.as_bytes());
        let items = decode_chunks(&mut JsonStreamDecoder::new(), stream.chunks(chunk));
        let errors = items.iter().filter(|i| i.is_err()).count();
        prop_assert!(errors <= 1, "garbage reported {} times", errors);
        prop_assert_eq!(items.last().cloned(), Some(Ok(instruction())));
    }
}
