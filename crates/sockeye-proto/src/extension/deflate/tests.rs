//! Unit tests of permessage-deflate: negotiation in both roles, compression, context
//! takeover, and the bounded inflation of compressed messages.

use super::*;

fn offers(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn select_one(config: &DeflateConfig, offer: &str) -> Option<DeflateParams> {
    select(config, &offers(&[offer]))
}

fn response_to(config: &DeflateConfig, offer: &str) -> String {
    select_one(config, offer).expect("accepted").to_string()
}

/// A JSON-like message, as an application would send several times.
fn json(id: u32) -> Vec<u8> {
    format!(
        "{{\"id\":{id},\"type\":\"trade\",\"symbol\":\"BTC-USD\",\"price\":\"64321.{id}\",\
         \"size\":\"0.0125\",\"side\":\"buy\",\"time\":\"2024-05-01T12:00:00.{id}Z\",\
         \"maker_order_id\":\"ac928c66-ca53-498f-9c13-a110027a60e8\",\
         \"taker_order_id\":\"c0e4b6e1-8d1a-4a4f-8a3b-3f1d2a6b7c9d\"}}"
    )
    .into_bytes()
}

fn codec(role: Role, params: DeflateParams) -> PerMessageDeflate {
    PerMessageDeflate::new(role, params, &DeflateConfig::enabled())
}

/// Compresses with one role and inflates with the other, as on the wire.
fn round_trip(
    sender: &mut PerMessageDeflate,
    receiver: &mut PerMessageDeflate,
    message: &[u8],
) -> usize {
    let compressed = sender.compress(message).expect("compressed");
    let mut out = Vec::new();
    receiver
        .inflate(&compressed, &mut out, Some(1 << 20), true)
        .unwrap();
    assert_eq!(out, message);
    compressed.len()
}

// ----- the client's offer -----

#[test]
fn client_offer_for_default_config() {
    assert_eq!(
        DeflateConfig::enabled().offer(),
        "permessage-deflate; client_max_window_bits"
    );
}

#[test]
fn client_offer_with_every_parameter() {
    let config = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(12),
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        config.offer(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=12"
    );
}

#[test]
fn client_offer_clamps_window_bits() {
    let config = DeflateConfig {
        server_max_window_bits: Some(3),
        client_max_window_bits: Some(20),
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        config.offer(),
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=15"
    );
}

// ----- the server's answer to each parameter -----

#[test]
fn server_accepts_plain_offer() {
    let config = DeflateConfig::enabled();
    assert_eq!(
        select_one(&config, "permessage-deflate"),
        Some(DeflateParams::default())
    );
    assert_eq!(
        response_to(&config, "Permessage-Deflate"),
        "permessage-deflate"
    );
}

#[test]
fn server_grants_server_no_context_takeover() {
    let config = DeflateConfig::enabled();
    assert_eq!(
        response_to(&config, "permessage-deflate; server_no_context_takeover"),
        "permessage-deflate; server_no_context_takeover"
    );
    // Our own setting sends it unasked.
    let ours = DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        response_to(&ours, "permessage-deflate"),
        "permessage-deflate; server_no_context_takeover"
    );
}

#[test]
fn server_confirms_client_no_context_takeover() {
    let config = DeflateConfig::enabled();
    assert_eq!(
        response_to(&config, "permessage-deflate; client_no_context_takeover"),
        "permessage-deflate; client_no_context_takeover"
    );
    let ours = DeflateConfig {
        client_no_context_takeover: true,
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        response_to(&ours, "permessage-deflate"),
        "permessage-deflate; client_no_context_takeover"
    );
}

#[test]
fn server_answers_server_max_window_bits_with_at_most_the_offer() {
    let offer = "permessage-deflate; server_max_window_bits=10";
    for (ours, answered) in [(None, 10), (Some(9), 9), (Some(12), 10), (Some(15), 10)] {
        let config = DeflateConfig {
            server_max_window_bits: ours,
            ..DeflateConfig::enabled()
        };
        assert_eq!(
            response_to(&config, offer),
            format!("permessage-deflate; server_max_window_bits={answered}"),
            "{ours:?}"
        );
    }
}

#[test]
fn server_limits_its_window_unasked() {
    let config = DeflateConfig {
        server_max_window_bits: Some(11),
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        response_to(&config, "permessage-deflate"),
        "permessage-deflate; server_max_window_bits=11"
    );
    let full = DeflateConfig {
        server_max_window_bits: Some(15),
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        response_to(&full, "permessage-deflate"),
        "permessage-deflate"
    );
}

#[test]
fn server_sets_client_max_window_bits_only_when_offered() {
    let cases = [
        (
            "permessage-deflate; client_max_window_bits",
            Some(10),
            "; client_max_window_bits=10",
        ),
        (
            "permessage-deflate; client_max_window_bits=12",
            Some(10),
            "; client_max_window_bits=10",
        ),
        (
            "permessage-deflate; client_max_window_bits=9",
            Some(10),
            "; client_max_window_bits=9",
        ),
        ("permessage-deflate; client_max_window_bits", None, ""),
        ("permessage-deflate; client_max_window_bits=9", None, ""),
        // 7.1.2.2: never in a response to an offer without it.
        ("permessage-deflate", Some(10), ""),
    ];
    for (offer, ours, expected) in cases {
        let config = DeflateConfig {
            client_max_window_bits: ours,
            ..DeflateConfig::enabled()
        };
        assert_eq!(
            response_to(&config, offer),
            format!("permessage-deflate{expected}"),
            "{offer} with {ours:?}"
        );
    }
}

#[test]
fn server_accepts_quoted_values() {
    assert_eq!(
        response_to(
            &DeflateConfig::enabled(),
            "permessage-deflate; server_max_window_bits=\"12\""
        ),
        "permessage-deflate; server_max_window_bits=12"
    );
}

/// Offers a server must decline (RFC 7692 5), each with what is wrong.
const INVALID_OFFERS: &[&str] = &[
    "permessage-deflate; x-unknown",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=09",
    "permessage-deflate; server_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=0",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover=\"x\"",
    "permessage-deflate; ;",
];

#[test]
fn server_declines_invalid_offer_and_takes_the_next() {
    let config = DeflateConfig::enabled();
    for bad in INVALID_OFFERS {
        let list = offers(&[bad, "permessage-deflate; client_no_context_takeover"]);
        assert_eq!(
            select(&config, &list),
            Some(DeflateParams {
                client_no_context_takeover: true,
                ..DeflateParams::default()
            }),
            "{bad}"
        );
    }
}

#[test]
fn server_declines_every_invalid_offer() {
    let config = DeflateConfig::enabled();
    for bad in INVALID_OFFERS {
        assert_eq!(select_one(&config, bad), None, "{bad}");
    }
    assert_eq!(select(&config, &offers(INVALID_OFFERS)), None);
}

#[test]
fn server_takes_offers_in_preference_order() {
    let config = DeflateConfig::enabled();
    let list = offers(&[
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=10; server_no_context_takeover",
        "permessage-deflate",
    ]);
    assert_eq!(
        select(&config, &list).unwrap().to_string(),
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
    );
    assert_eq!(select(&config, &offers(&["x-webkit-deflate-frame"])), None);
}

#[test]
fn server_agrees_to_8_bit_window_and_sends_uncompressed() {
    let params = select_one(
        &DeflateConfig::enabled(),
        "permessage-deflate; server_max_window_bits=8",
    )
    .unwrap();
    assert_eq!(params.server_max_window_bits, Some(8));
    let mut server = codec(Role::Server, params);
    assert_eq!(server.compress(&json(1)), None);
    // It still inflates what the client compresses.
    let mut client = codec(Role::Client, params);
    round_trip(&mut client, &mut server, &json(2));
}

// ----- the client's check of the response -----

fn agree_one(offer: &str, response: &str) -> Result<DeflateParams, NegotiationError> {
    agree(&offers(&[offer]), response)
}

#[test]
fn client_accepts_each_response_parameter() {
    let offer = "permessage-deflate; client_max_window_bits";
    assert_eq!(
        agree_one(offer, "permessage-deflate"),
        Ok(DeflateParams::default())
    );
    assert_eq!(
        agree_one(offer, "permessage-deflate; server_no_context_takeover"),
        Ok(DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        })
    );
    assert_eq!(
        agree_one(offer, "permessage-deflate; client_no_context_takeover"),
        Ok(DeflateParams {
            client_no_context_takeover: true,
            ..DeflateParams::default()
        })
    );
    assert_eq!(
        agree_one(offer, "permessage-deflate; server_max_window_bits=12"),
        Ok(DeflateParams {
            server_max_window_bits: Some(12),
            ..DeflateParams::default()
        })
    );
    assert_eq!(
        agree_one(offer, "permessage-deflate; client_max_window_bits=9"),
        Ok(DeflateParams {
            client_max_window_bits: Some(9),
            ..DeflateParams::default()
        })
    );
}

#[test]
fn client_refuses_invalid_responses() {
    let offer = "permessage-deflate; client_max_window_bits";
    let cases = [
        (
            "permessage-deflate; x-unknown=1",
            NegotiationError::UnknownParameter("x-unknown".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover; Server_No_Context_Takeover",
            NegotiationError::DuplicateParameter("Server_No_Context_Takeover".into()),
        ),
        // 7.1.2.2: a response gives client_max_window_bits a value.
        (
            "permessage-deflate; client_max_window_bits",
            NegotiationError::InvalidValue {
                name: "client_max_window_bits".into(),
                value: None,
            },
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            NegotiationError::InvalidValue {
                name: "server_max_window_bits".into(),
                value: Some("16".into()),
            },
        ),
        (
            "permessage-deflate; client_no_context_takeover=true",
            NegotiationError::InvalidValue {
                name: "client_no_context_takeover".into(),
                value: Some("true".into()),
            },
        ),
        (
            "permessage-deflate; =",
            NegotiationError::Malformed("permessage-deflate; =".into()),
        ),
    ];
    for (response, error) in cases {
        assert_eq!(agree_one(offer, response), Err(error), "{response}");
    }
}

#[test]
fn client_refuses_ungranted_server_no_context_takeover() {
    assert_eq!(
        agree_one(
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate"
        ),
        Err(NegotiationError::NotGranted {
            asked: "server_no_context_takeover".into(),
            given: "context takeover".into()
        })
    );
}

#[test]
fn client_refuses_larger_or_missing_server_max_window_bits() {
    let offer = "permessage-deflate; server_max_window_bits=10";
    assert_eq!(
        agree_one(offer, "permessage-deflate; server_max_window_bits=11"),
        Err(NegotiationError::NotGranted {
            asked: "server_max_window_bits=10".into(),
            given: "server_max_window_bits=11".into()
        })
    );
    assert_eq!(
        agree_one(offer, "permessage-deflate"),
        Err(NegotiationError::NotGranted {
            asked: "server_max_window_bits=10".into(),
            given: "server_max_window_bits=15".into()
        })
    );
    assert!(agree_one(offer, "permessage-deflate; server_max_window_bits=9").is_ok());
}

#[test]
fn client_refuses_unoffered_client_max_window_bits() {
    assert_eq!(
        agree_one(
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits=10"
        ),
        Err(NegotiationError::Unoffered("client_max_window_bits"))
    );
}

#[test]
fn client_matches_response_to_any_of_its_offers() {
    let list = offers(&[
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits=12; server_max_window_bits=12",
    ]);
    // Answers the second offer only.
    assert_eq!(
        agree(
            &list,
            "permessage-deflate; client_max_window_bits=11; server_max_window_bits=12"
        ),
        Ok(DeflateParams {
            server_max_window_bits: Some(12),
            client_max_window_bits: Some(11),
            ..DeflateParams::default()
        })
    );
    // Answers the first.
    assert_eq!(
        agree(
            &list,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
        ),
        Ok(DeflateParams {
            server_no_context_takeover: true,
            server_max_window_bits: Some(9),
            ..DeflateParams::default()
        })
    );
    // Answers neither: the first offer's complaint is reported.
    assert_eq!(
        agree(&list, "permessage-deflate; server_max_window_bits=13"),
        Err(NegotiationError::NotGranted {
            asked: "server_no_context_takeover".into(),
            given: "context takeover".into()
        })
    );
    assert_eq!(
        agree(&offers(&["x-foo"]), "permessage-deflate"),
        Err(NegotiationError::NoOffer)
    );
}

#[test]
fn client_agreement_includes_what_its_offer_announced() {
    let offer = "permessage-deflate; client_no_context_takeover; client_max_window_bits=10";
    assert_eq!(
        agree_one(offer, "permessage-deflate"),
        Ok(DeflateParams {
            client_no_context_takeover: true,
            client_max_window_bits: Some(10),
            ..DeflateParams::default()
        })
    );
    assert_eq!(
        agree_one(offer, "permessage-deflate; client_max_window_bits=12")
            .unwrap()
            .client_max_window_bits,
        Some(10)
    );
}

#[test]
fn client_told_8_bits_sends_uncompressed() {
    let params = agree_one(
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=8",
    )
    .unwrap();
    let mut client = codec(Role::Client, params);
    assert_eq!(client.compress(&json(1)), None);
    let mut server = codec(Role::Server, params);
    round_trip(&mut server, &mut client, &json(2));
}

// ----- compression -----

#[test]
fn rfc_7692_examples_inflate() {
    let mut client = codec(Role::Client, DeflateParams::default());
    let mut out = Vec::new();
    // 7.2.3.1: "Hello" in one compressed message.
    client
        .inflate(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &mut out,
            None,
            true,
        )
        .unwrap();
    assert_eq!(out, b"Hello");
    // 7.2.3.2: the same message again, referring to the first (context takeover).
    out.clear();
    client
        .inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, None, true)
        .unwrap();
    assert_eq!(out, b"Hello");
    // 7.2.3.3: a stored (uncompressed) block, as a message of its own.
    let mut client = codec(Role::Client, DeflateParams::default());
    out.clear();
    client
        .inflate(
            &[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            &mut out,
            None,
            true,
        )
        .unwrap();
    assert_eq!(out, b"Hello");
    // 7.2.3.4: a final block (BFINAL set), then a fresh stream for the next message.
    let mut client = codec(Role::Client, DeflateParams::default());
    out.clear();
    client
        .inflate(
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            &mut out,
            None,
            true,
        )
        .unwrap();
    assert_eq!(out, b"Hello");
    out.clear();
    client
        .inflate(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &mut out,
            None,
            true,
        )
        .unwrap();
    assert_eq!(out, b"Hello");
    // 7.2.3.6: an empty message.
    out.clear();
    client.inflate(&[0x00], &mut out, None, true).unwrap();
    assert!(out.is_empty());
}

#[test]
fn compresses_hello_as_the_rfc_example() {
    let mut server = PerMessageDeflate::new(
        Role::Server,
        DeflateParams::default(),
        &DeflateConfig {
            threshold: 0,
            ..DeflateConfig::enabled()
        },
    );
    // 7.2.3.1, with the final 00 00 ff ff removed (7.2.1).
    assert_eq!(
        &server.compress(b"Hello").unwrap()[..],
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
}

#[test]
fn messages_under_the_threshold_are_not_compressed() {
    let mut server = codec(Role::Server, DeflateParams::default());
    assert_eq!(server.compress(&[b'a'; DEFAULT_THRESHOLD - 1]), None);
    assert!(server.compress(&[b'a'; DEFAULT_THRESHOLD]).is_some());
}

#[test]
fn context_takeover_compresses_a_repeated_message_smaller() {
    let params = DeflateParams::default();
    let (mut client, mut server) = (codec(Role::Client, params), codec(Role::Server, params));
    let first = round_trip(&mut client, &mut server, &json(1));
    let second = round_trip(&mut client, &mut server, &json(1));
    assert!(second * 4 < first, "first {first} bytes, second {second}");
    // And the other direction.
    let first = round_trip(&mut server, &mut client, &json(2));
    let second = round_trip(&mut server, &mut client, &json(2));
    assert!(second * 4 < first, "first {first} bytes, second {second}");
}

#[test]
fn no_context_takeover_compresses_each_message_alone() {
    for (params, role) in [
        (
            DeflateParams {
                client_no_context_takeover: true,
                ..DeflateParams::default()
            },
            Role::Client,
        ),
        (
            DeflateParams {
                server_no_context_takeover: true,
                ..DeflateParams::default()
            },
            Role::Server,
        ),
    ] {
        let mut sender = codec(role, params);
        let peer = match role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let mut receiver = codec(peer, params);
        let first = round_trip(&mut sender, &mut receiver, &json(1));
        let second = round_trip(&mut sender, &mut receiver, &json(1));
        assert_eq!(first, second, "{role:?}");
        // The receiver resets its window between messages too: a message that refers to
        // the previous one cannot be inflated.
        let mut takeover = codec(role, DeflateParams::default());
        let first = takeover.compress(&json(3)).unwrap();
        let referring = takeover.compress(&json(3)).unwrap();
        let mut out = Vec::new();
        receiver.inflate(&first, &mut out, None, true).unwrap();
        assert_eq!(out, json(3));
        out.clear();
        assert_eq!(
            receiver.inflate(&referring, &mut out, None, true),
            Err(ProtocolError::InvalidCompressedData),
            "{role:?}"
        );
    }
}

#[test]
fn window_bits_9_round_trip() {
    let params = DeflateParams {
        server_max_window_bits: Some(9),
        client_max_window_bits: Some(9),
        ..DeflateParams::default()
    };
    let (mut client, mut server) = (codec(Role::Client, params), codec(Role::Server, params));
    let big: Vec<u8> = (0..50).flat_map(json).collect();
    round_trip(&mut client, &mut server, &big);
    round_trip(&mut server, &mut client, &big);
    round_trip(&mut client, &mut server, &big);
}

#[test]
fn inflates_input_split_anywhere() {
    let mut server = codec(Role::Server, DeflateParams::default());
    let message: Vec<u8> = (0..20).flat_map(json).collect();
    let compressed = server.compress(&message).unwrap();
    for split in [1, 2, 7, compressed.len() / 2, compressed.len() - 1] {
        let mut client = codec(Role::Client, DeflateParams::default());
        let mut out = Vec::new();
        for piece in compressed.chunks(split) {
            client.inflate(piece, &mut out, None, false).unwrap();
        }
        client.inflate(&[], &mut out, None, true).unwrap();
        assert_eq!(out, message, "split {split}");
    }
}

#[test]
fn corrupt_data_fails() {
    let mut client = codec(Role::Client, DeflateParams::default());
    let mut out = Vec::new();
    // BTYPE 11 is reserved.
    assert_eq!(
        client.inflate(&[0xff, 0xff, 0xff, 0xff], &mut out, None, true),
        Err(ProtocolError::InvalidCompressedData)
    );
}

// ----- the size limit -----

/// 4 MiB of zeros at the best compression: about 4 KiB, 64 times the limit of the tests.
fn bomb() -> Bytes {
    let mut server = PerMessageDeflate::new(
        Role::Server,
        DeflateParams::default(),
        &DeflateConfig {
            level: 9,
            ..DeflateConfig::enabled()
        },
    );
    let bomb = server.compress(&vec![0u8; 4 << 20]).unwrap();
    assert!(bomb.len() < 5 << 10, "{}", bomb.len());
    bomb
}

#[test]
fn compression_bomb_fails_before_inflating_past_the_limit() {
    const MAX: u64 = 64 << 10;
    let bomb = bomb();
    for piece in [bomb.len(), 1000, 1] {
        let mut client = codec(Role::Client, DeflateParams::default());
        let mut out = Vec::new();
        let mut result = Ok(());
        for chunk in bomb.chunks(piece) {
            result = client.inflate(chunk, &mut out, Some(MAX), false);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(ProtocolError::MessageTooLarge {
                size: MAX + 1,
                max: MAX
            }),
            "pieces of {piece}"
        );
        // The output buffer never grew past the limit...
        assert_eq!(out.len() as u64, MAX);
        assert!(out.capacity() as u64 <= MAX, "capacity {}", out.capacity());
        // ...and the inflater stopped as soon as it got there: it read a small part of the
        // input (some 1/64, plus what fills its bit buffer); the rest was never inflated.
        let read = client.inflater.as_ref().unwrap().total_in();
        assert!(
            read < bomb.len() as u64 / 16,
            "read {read} of {}",
            bomb.len()
        );
    }
}

#[test]
fn message_exactly_at_the_limit_inflates() {
    const MAX: usize = 64 << 10;
    let mut server = codec(Role::Server, DeflateParams::default());
    let compressed = server.compress(&vec![7u8; MAX]).unwrap();
    let mut client = codec(Role::Client, DeflateParams::default());
    let mut out = Vec::new();
    client
        .inflate(&compressed, &mut out, Some(MAX as u64), true)
        .unwrap();
    assert_eq!(out, vec![7u8; MAX]);
    assert_eq!(out.capacity(), MAX);
    // One byte more is refused.
    let compressed = server.compress(&vec![7u8; MAX + 1]).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        client.inflate(&compressed, &mut out, Some(MAX as u64), true),
        Err(ProtocolError::MessageTooLarge { .. })
    ));
}

#[test]
fn rsv1_only_on_the_first_data_frame() {
    assert_eq!(check_rsv1(OpCode::Text), Ok(()));
    assert_eq!(check_rsv1(OpCode::Binary), Ok(()));
    assert_eq!(
        check_rsv1(OpCode::Continuation),
        Err(ProtocolError::CompressedContinuation)
    );
    for control in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        assert_eq!(
            check_rsv1(control),
            Err(ProtocolError::CompressedControlFrame)
        );
    }
}
