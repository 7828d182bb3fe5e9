//! Issue 29: a classroom behind one address. Every client here comes from
//! 127.0.0.1, as a class behind a school's NAT, each page with its own
//! browser id (`x-lens-browser`), against the product's default limits: on
//! `serve`, and through two gateways (one worker, private NATS and
//! PostgreSQL) with the calls spread over both.
//!
//! - `*_eight_browsers_all_get_their_maps`: while the device is busy, eight
//!   classmates' runs all queue (none refused) and all finish.
//! - `*_a_browser_over_its_own_limit_is_told_to_wait`: a browser with two
//!   runs is refused a third, while a classmate's run is admitted.
//! - `*_a_browsers_new_run_replaces_its_own_waiting_one`: three strokes
//!   while the device is busy: each waiting run ends (CANCELLED, saying
//!   why) and no longer counts against the browser's limit of two.
//! - `*_browsers_are_served_in_turn`: a browser's second run (its first is
//!   watched by a classmate, so not replaced) starts after a classmate's
//!   first that came later.
//! - `*_typos_lock_nobody_out_but_a_guesser_is_refused`: fifteen wrong
//!   codes, then the right code joins; after the address's limit of wrong
//!   codes a new browser's right code is refused, but a browser that joined
//!   before rejoins by code, and the teacher teaches and closes.

use std::net::SocketAddr;
use std::time::Duration;

use lens_proto::v1::{
    explain_event::Event, CancelRequest, ClassView, CloseClassRequest, ExplainEvent,
    ExplainRequest, FollowClassRequest, Method, OpenClassRequest, TeachRequest, WatchRequest,
};
use lens_tests::cluster::Services;
use lens_tests::{
    browser_client, minutes_of_work, preset, temp_folder, BrowserClient, ChildProcess, ChildWorker,
};
use lens_worker::server::MISSES_PER_PERIOD;
use tonic::Code;

type Events = tonic::Streaming<ExplainEvent>;

/// Where the class connects: `serve` (both addresses the same) or two
/// gateways in front of one worker.
struct Front {
    addresses: [SocketAddr; 2],
    _serve: Option<ChildWorker>,
    _cluster: Option<(Services, Vec<ChildProcess>)>,
}

impl Front {
    fn serve() -> Front {
        let serve = ChildWorker::start(&temp_folder("classroom-address"));
        Front {
            addresses: [serve.address; 2],
            _serve: Some(serve),
            _cluster: None,
        }
    }

    fn gateways() -> Front {
        let services = Services::start();
        let worker = services.worker("one", 10);
        let (a, address_a) = services.gateway();
        let (b, address_b) = services.gateway();
        Front {
            addresses: [address_a, address_b],
            _serve: None,
            _cluster: Some((services, vec![worker, a, b])),
        }
    }

    /// Browser `name`'s client, through the first or second address by `n`.
    async fn browser(&self, name: &str, n: usize) -> BrowserClient {
        browser_client(self.addresses[n % 2], &format!("browser-{name}")).await
    }
}

async fn next_event(stream: &mut Events) -> Result<Event, tonic::Status> {
    let next = tokio::time::timeout(Duration::from_secs(120), stream.message()).await;
    Ok(next
        .expect("an event within two minutes")?
        .unwrap()
        .event
        .unwrap())
}

/// A run that keeps the device busy for minutes: its stream, id and secret,
/// once it has started (a gateway says Queued first).
async fn running_run(client: &mut BrowserClient, seed: u64) -> (Events, String, String) {
    let request = long_request(client, seed).await;
    let mut stream = client.explain(request).await.unwrap().into_inner();
    loop {
        if let Event::Started(s) = next_event(&mut stream).await.unwrap() {
            return (stream, s.id, s.owner_secret);
        }
    }
}

async fn long_request(client: &mut BrowserClient, seed: u64) -> ExplainRequest {
    let image = preset(client, 1).await.png;
    ExplainRequest {
        seed,
        ..minutes_of_work(image)
    }
}

/// A run that keeps the device busy for minutes: its stream, id and secret.
async fn long_run(client: &mut BrowserClient, seed: u64) -> (Events, String, String) {
    let request = long_request(client, seed).await;
    let mut stream = client.explain(request).await.unwrap().into_inner();
    loop {
        match next_event(&mut stream).await.unwrap() {
            Event::Queued(q) => return (stream, q.id, q.owner_secret),
            Event::Started(s) => return (stream, s.id, s.owner_secret),
            _ => continue,
        }
    }
}

async fn cancel(client: &mut BrowserClient, id: String, owner_secret: String) {
    client
        .cancel(CancelRequest { id, owner_secret })
        .await
        .unwrap();
}

/// A quick digit run (efficient PDA) of preset `label`.
async fn quick_request(client: &mut BrowserClient, label: u32) -> ExplainRequest {
    ExplainRequest {
        image: preset(client, label).await.png,
        method: Method::EfficientPda as i32,
        window: 4,
        stride: 2,
        ..Default::default()
    }
}

/// Reads a stream to its end; whether it finished.
async fn finishes(mut stream: Events) -> bool {
    loop {
        match next_event(&mut stream).await {
            Ok(Event::Finished(_)) => return true,
            Ok(_) => continue,
            Err(status) => panic!("the run failed: {status:?}"),
        }
    }
}

async fn eight_browsers_all_get_their_maps(front: Front) {
    let mut holder = front.browser("holder", 0).await;
    let (_holding, id, secret) = long_run(&mut holder, 1).await;
    let mut streams = Vec::new();
    for n in 0..8 {
        let mut classmate = front.browser(&format!("classmate-{n}"), n).await;
        let request = quick_request(&mut classmate, n as u32).await;
        let mut stream = classmate.explain(request).await.unwrap().into_inner();
        let first = next_event(&mut stream).await.unwrap();
        assert!(
            matches!(first, Event::Queued(_)),
            "classmate {n} waits its turn: {first:?}"
        );
        streams.push(stream);
    }
    cancel(&mut holder, id, secret).await;
    for (n, stream) in streams.into_iter().enumerate() {
        assert!(finishes(stream).await, "classmate {n}'s map");
    }
}

async fn a_browser_over_its_own_limit_is_told_to_wait(front: Front) {
    let mut eager = front.browser("eager", 0).await;
    // Running, so not a waiting run the second could replace.
    let (_first, first_id, first_secret) = running_run(&mut eager, 1).await;
    let (_second, second_id, second_secret) = long_run(&mut eager, 2).await;
    // A classmate watches the second run: it is nobody's to replace.
    let mut watcher = front.browser("watcher", 1).await;
    let watch = WatchRequest {
        id: second_id.clone(),
    };
    let _watching = watcher.watch(watch).await.unwrap().into_inner();
    let image = preset(&mut eager, 3).await.png;
    let third = ExplainRequest {
        seed: 3,
        ..minutes_of_work(image)
    };
    let refused = eager.explain(third).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("you already have 2 explanations"),
        "{refused:?}"
    );
    // The classmate at the same address is another client.
    let (_classmate_run, id, secret) = long_run(&mut watcher, 4).await;
    cancel(&mut watcher, id, secret).await;
    cancel(&mut eager, second_id, second_secret).await;
    cancel(&mut eager, first_id, first_secret).await;
}

async fn typos_lock_nobody_out_but_a_guesser_is_refused(front: Front) {
    let mut teacher = front.browser("teacher", 0).await;
    let opened = teacher
        .open_class(OpenClassRequest {})
        .await
        .unwrap()
        .into_inner();
    let follow = |code: &str| FollowClassRequest {
        code: code.to_string(),
        teacher_secret: String::new(),
    };
    let mut returning = front.browser("returning", 1).await;
    let _first_visit = returning.follow_class(follow(&opened.code)).await.unwrap();
    let wrong_code = if opened.code == "ZZZZZZ" {
        "YYYYYY"
    } else {
        "ZZZZZZ"
    };
    let mut typist = front.browser("typist", 0).await;
    for n in 0..15 {
        let mut typist = front.browser(&format!("typist-{n}"), n).await;
        let missed = typist.follow_class(follow(wrong_code)).await.unwrap_err();
        assert_eq!(missed.code(), Code::NotFound, "{missed:?}");
    }
    // After fifteen typos the class still joins by its code.
    let joined = typist.follow_class(follow(&opened.code)).await;
    assert!(joined.is_ok(), "{:?}", joined.err());
    // A guesser behind the same address meets the limit.
    for _ in 15..MISSES_PER_PERIOD {
        let _ = typist.follow_class(follow(wrong_code)).await;
    }
    let mut newcomer = front.browser("newcomer", 1).await;
    let refused = newcomer
        .follow_class(follow(&opened.code))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("too many wrong class codes"),
        "{refused:?}"
    );
    // A browser that followed the class before proves it knows the code,
    // through either address.
    for n in 0..2 {
        let mut again = front.browser("returning", n).await;
        let rejoined = again
            .follow_class(follow(&opened.code.to_lowercase()))
            .await;
        assert!(rejoined.is_ok(), "{:?}", rejoined.err());
    }
    // The teacher, behind the locked-out address, still teaches and closes.
    let view = ClassView {
        model: "digits".into(),
        ..Default::default()
    };
    let teach = TeachRequest {
        code: opened.code.clone(),
        teacher_secret: opened.teacher_secret.clone(),
        view: Some(view),
    };
    front
        .browser("teacher", 1)
        .await
        .teach(teach)
        .await
        .unwrap();
    let close = CloseClassRequest {
        code: opened.code.clone(),
        teacher_secret: opened.teacher_secret.clone(),
    };
    teacher.close_class(close).await.unwrap();
}

/// Reads a stream until it fails; its status.
async fn failure(stream: &mut Events) -> tonic::Status {
    loop {
        if let Err(status) = next_event(stream).await {
            return status;
        }
    }
}

async fn a_browsers_new_run_replaces_its_own_waiting_one(front: Front) {
    let mut holder = front.browser("holder", 0).await;
    let (_holding, id, secret) = long_run(&mut holder, 1).await;
    // Three strokes while the device is busy: each new run replaces the
    // waiting one, so the browser's limit of two is never reached.
    let mut drawer = front.browser("drawer", 1).await;
    let mut strokes = Vec::new();
    for label in 2..5 {
        let stroke = quick_request(&mut drawer, label).await;
        let mut stream = drawer.explain(stroke).await.unwrap().into_inner();
        let Ok(Event::Queued(place)) = next_event(&mut stream).await else {
            panic!("stroke {label}'s run waits");
        };
        assert_eq!(place.ahead, 1, "behind the holder only");
        strokes.push(stream);
    }
    for replaced in &mut strokes[..2] {
        let status = failure(replaced).await;
        assert_eq!(status.code(), Code::Cancelled, "{status:?}");
        assert!(status.message().contains("newer explanation"), "{status:?}");
    }
    cancel(&mut holder, id, secret).await;
    assert!(finishes(strokes.pop().unwrap()).await);
}

/// When the run of `stream` starts (it must finish).
async fn started_at(mut stream: Events) -> tokio::time::Instant {
    let mut started = None;
    loop {
        match next_event(&mut stream).await {
            Ok(Event::Started(_)) => started = Some(tokio::time::Instant::now()),
            Ok(Event::Finished(_)) => return started.expect("Started before Finished"),
            Ok(_) => continue,
            Err(status) => panic!("the run failed: {status:?}"),
        }
    }
}

async fn browsers_are_served_in_turn(front: Front) {
    let mut holder = front.browser("holder", 0).await;
    let (_holding, id, secret) = running_run(&mut holder, 1).await;
    let mut eager = front.browser("eager", 1).await;
    let first = quick_request(&mut eager, 2).await;
    let mut first = eager.explain(first).await.unwrap().into_inner();
    let Ok(Event::Queued(queued)) = next_event(&mut first).await else {
        panic!("the first run waits");
    };
    // Watched by a classmate, the first run is not the eager browser's to
    // replace: its second run waits behind it.
    let mut watcher = front.browser("watcher", 0).await;
    let watch = WatchRequest { id: queued.id };
    let _watching = watcher.watch(watch).await.unwrap().into_inner();
    let second = quick_request(&mut eager, 3).await;
    let second = eager.explain(second).await.unwrap().into_inner();
    let mut classmate = front.browser("classmate", 1).await;
    let later = quick_request(&mut classmate, 4).await;
    let later = classmate.explain(later).await.unwrap().into_inner();
    let starts: Vec<_> = [first, second, later]
        .into_iter()
        .map(|stream| tokio::spawn(started_at(stream)))
        .collect();
    cancel(&mut holder, id, secret).await;
    let mut at = Vec::new();
    for start in starts {
        at.push(start.await.unwrap());
    }
    assert!(at[0] < at[2], "the eager browser's first run starts first");
    assert!(
        at[2] < at[1],
        "the classmate's first run starts before the eager browser's second"
    );
}

/// Each scenario twice: on `serve` and through two gateways.
macro_rules! on_both_fronts {
    ($($scenario:ident: $on_serve:ident, $through_gateways:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $on_serve() {
            $scenario(Front::serve()).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $through_gateways() {
            $scenario(Front::gateways()).await;
        }
    )*};
}

on_both_fronts! {
    eight_browsers_all_get_their_maps:
        serve_eight_browsers_all_get_their_maps, gateways_eight_browsers_all_get_their_maps;
    a_browser_over_its_own_limit_is_told_to_wait:
        serve_a_browser_over_its_own_limit_is_told_to_wait,
        gateways_a_browser_over_its_own_limit_is_told_to_wait;
    typos_lock_nobody_out_but_a_guesser_is_refused:
        serve_typos_lock_nobody_out_but_a_guesser_is_refused,
        gateways_typos_lock_nobody_out_but_a_guesser_is_refused;
    a_browsers_new_run_replaces_its_own_waiting_one:
        serve_a_browsers_new_run_replaces_its_own_waiting_one,
        gateways_a_browsers_new_run_replaces_its_own_waiting_one;
    browsers_are_served_in_turn:
        serve_browsers_are_served_in_turn, gateways_browsers_are_served_in_turn;
}
