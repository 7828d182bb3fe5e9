//! Issue 10 over gRPC: runs that fit a lesson and classes. The worker
//! estimates a run from the speed it measured, suggests a stride that fits
//! a minute, tells a waiting run its place in the queue, and lets the
//! creator cancel; a class shows its followers what the teacher shows.

use std::time::Duration;

use lens_proto::v1::{
    explain_event::Event, CancelRequest, ClassEvent, ClassView, CloseClassRequest, ExplainEvent,
    ExplainRequest, FollowClassRequest, ListModelsRequest, Method, OpenClassRequest, TeachRequest,
    WatchRequest,
};
use lens_tests::{
    digits_with, minutes_of_work, native_client, preset, repo_root, start_worker, start_worker_with,
};
use lens_worker::defaults::{ModelDefaults, DEFAULTS_FILE};
use lens_worker::server::LESSON_SECONDS;
use tonic::Code;

fn settings(model: &str, method: Method, stride: u32) -> ExplainRequest {
    ExplainRequest {
        model: model.into(),
        method: method as i32,
        stride,
        samples: Some(10),
        ..Default::default()
    }
}

#[tokio::test]
async fn estimates_count_the_work_and_suggest_a_stride_that_fits() {
    let address = start_worker().await;
    let client = native_client(address).await;
    let estimate = |request| {
        let mut client = client.clone();
        async move { client.estimate(request).await.map(|r| r.into_inner()) }
    };

    // Digits, k = 4: 25 x 25 windows, one pass each plus the image's own.
    let digits = estimate(settings("digits", Method::EfficientPda, 1))
        .await
        .unwrap();
    assert_eq!((digits.windows, digits.forward_passes), (625, 626));
    assert_eq!(digits.device, "CPU");
    assert!(digits.seconds > 0.0 && digits.seconds < LESSON_SECONDS);
    assert_eq!(
        digits.suggested_stride, 0,
        "a short run needs no other stride"
    );

    // PDA, S = 10: ten passes per window, at the same measured speed.
    let pda = estimate(settings("digits", Method::Pda, 1)).await.unwrap();
    assert_eq!(pda.forward_passes, 6251);
    let ratio = pda.seconds / digits.seconds;
    assert!((ratio - 6251.0 / 626.0).abs() < 1e-6, "{ratio}");

    // A photo at stride 1: 215 x 215 windows, minutes on a CPU; the worker
    // suggests the smallest stride that fits a minute.
    let photo = estimate(settings("efficientnet-lite0", Method::EfficientPda, 1))
        .await
        .unwrap();
    assert_eq!(photo.windows, 215 * 215);
    assert!(photo.seconds > LESSON_SECONDS, "{photo:?}");
    let stride = photo.suggested_stride;
    assert!(stride > 1 && stride <= 10, "{photo:?}");
    assert!(photo.suggested_seconds <= LESSON_SECONDS, "{photo:?}");
    let suggested = estimate(settings("efficientnet-lite0", Method::EfficientPda, stride))
        .await
        .unwrap();
    assert!((suggested.seconds - photo.suggested_seconds).abs() < 1e-9);
    if stride > 2 {
        let finer = estimate(settings(
            "efficientnet-lite0",
            Method::EfficientPda,
            stride - 1,
        ))
        .await
        .unwrap();
        assert!(
            finer.seconds > LESSON_SECONDS,
            "the smallest stride that fits"
        );
    }

    // Settings the worker would refuse are refused here too.
    let too_large = ExplainRequest {
        window: 40,
        ..settings("digits", Method::EfficientPda, 1)
    };
    let status = estimate(too_large).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// Each shipped model starts with the defaults its committed measurement
/// chose for a CPU (docs/experiments/defaults.md): a stride at most half
/// the window, within the budget; the digits' defaults make a map.
#[tokio::test]
async fn each_model_starts_with_the_defaults_measured_for_its_device() {
    let address = start_worker().await;
    for model in models_of(address).await {
        let path = repo_root().join(format!("docs/experiments/defaults-{}.json", model.id));
        let text = std::fs::read_to_string(&path).unwrap();
        let measured: ModelDefaults = serde_json::from_str(&text).unwrap();
        let (device, chosen) = measured
            .chosen_for(&model.device)
            .expect("a CPU measurement");
        assert!(
            chosen.overlaps() && chosen.seconds <= device.budget_seconds,
            "{chosen:?}"
        );
        // `efficient-pda` is METHOD_EFFICIENT_PDA on the wire.
        let wire_name = format!("METHOD_{}", chosen.method.replace('-', "_").to_uppercase());
        let method = Method::from_str_name(&wire_name);
        assert_eq!(Some(model.default_method()), method, "{}", model.id);
        assert_eq!(
            (model.default_window, model.default_stride),
            (chosen.window as u32, chosen.stride as u32),
            "{}",
            model.id
        );
        if let Some(samples) = chosen.samples {
            assert_eq!(model.default_samples, samples as u32);
        }
        assert!(model.defaults_basis.contains(&device.machine), "{model:?}");
    }

    let digits = models_of(address)
        .await
        .into_iter()
        .find(|m| m.id == "digits")
        .unwrap();
    let mut client = native_client(address).await;
    let request = ExplainRequest {
        image: preset(&mut client, 3).await.png,
        model: digits.id.clone(),
        method: digits.default_method,
        window: digits.default_window,
        stride: digits.default_stride,
        samples: Some(digits.default_samples),
        ..Default::default()
    };
    let mut stream = client.explain(request).await.unwrap().into_inner();
    while !matches!(next_event(&mut stream).await, Event::Finished(_)) {}
}

/// Without a measurement for its device a model starts with efficient PDA
/// at the smallest stride that finishes in seconds on this worker: stride 1
/// for the digits on any machine.
#[tokio::test]
async fn an_unmeasured_model_defaults_to_efficient_pda_at_a_stride_that_fits() {
    let without = digits_with(DEFAULTS_FILE, None);
    let digits = &models_of(start_worker_with(&without).await).await[0];
    assert_eq!(digits.default_method(), Method::EfficientPda);
    assert!(digits.defaults_basis.is_empty());
    assert_eq!((digits.default_window, digits.default_stride), (4, 1));
}

async fn models_of(address: std::net::SocketAddr) -> Vec<lens_proto::v1::ModelInfo> {
    let mut client = native_client(address).await;
    client
        .list_models(ListModelsRequest {})
        .await
        .unwrap()
        .into_inner()
        .models
}

async fn next_event(stream: &mut tonic::Streaming<ExplainEvent>) -> Event {
    tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("an event within a minute")
        .unwrap()
        .unwrap()
        .event
        .unwrap()
}

#[tokio::test]
async fn a_waiting_run_knows_its_place_and_its_creator_can_cancel_it() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let one = preset(&mut client, 1).await.png;
    let seven = preset(&mut client, 7).await.png;

    let mut running = client
        .explain(minutes_of_work(one))
        .await
        .unwrap()
        .into_inner();
    let Event::Started(first) = next_event(&mut running).await else {
        panic!("the first run starts at once");
    };
    // A second run waits behind the first, and is told so with its link.
    let mut waiting = client
        .explain(minutes_of_work(seven))
        .await
        .unwrap()
        .into_inner();
    let Event::Queued(place) = next_event(&mut waiting).await else {
        panic!("the second run waits");
    };
    assert_eq!(place.ahead, 1);
    assert_eq!(place.id.len(), 32);
    assert!(!place.owner_secret.is_empty(), "the creator can cancel it");
    let estimate = client
        .estimate(settings("digits", Method::EfficientPda, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(estimate.jobs_ahead, 2);

    // Only the creator's secret cancels; an unknown run cannot be cancelled.
    let wrong = CancelRequest {
        id: place.id.clone(),
        owner_secret: "not the secret".into(),
    };
    let status = client.cancel(wrong).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let unknown = CancelRequest {
        id: "0".repeat(32),
        owner_secret: place.owner_secret.clone(),
    };
    let status = client.cancel(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // Cancelling the waiting run ends its stream with CANCELLED at once.
    client
        .cancel(CancelRequest {
            id: place.id.clone(),
            owner_secret: place.owner_secret.clone(),
        })
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), waiting.message())
        .await
        .expect("the cancelled run ends at once");
    assert_eq!(ended.unwrap_err().code(), Code::Cancelled);

    // Cancelling the running one stops it within a batch: the device is
    // free again, and a short run finishes.
    client
        .cancel(CancelRequest {
            id: first.id.clone(),
            owner_secret: first.owner_secret.clone(),
        })
        .await
        .unwrap();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(30), running.message())
            .await
            .expect("the cancelled run ends within a batch")
        {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(ended.unwrap_err().code(), Code::Cancelled);
    let short = ExplainRequest {
        image: preset(&mut client, 3).await.png,
        method: Method::EfficientPda as i32,
        window: 4,
        ..Default::default()
    };
    let mut stream = client.explain(short).await.unwrap().into_inner();
    let first_event = next_event(&mut stream).await;
    assert!(
        matches!(first_event, Event::Started(_) | Event::Queued(_)),
        "{first_event:?}"
    );
    loop {
        match next_event(&mut stream).await {
            Event::Finished(_) => break,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn a_class_shows_followers_what_the_teacher_shows_until_it_closes() {
    let address = start_worker().await;
    let mut teacher = native_client(address).await;
    let mut student = native_client(address).await;
    let opened = teacher
        .open_class(OpenClassRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.code.len(), 6);

    // The teacher's own page follows for the count; it is not counted.
    let mut teachers_page = teacher
        .follow_class(FollowClassRequest {
            code: opened.code.clone(),
            teacher_secret: opened.teacher_secret.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_class_event(&mut teachers_page).await.followers, 0);
    let mut students_page = student
        .follow_class(FollowClassRequest {
            code: opened.code.to_lowercase(),
            teacher_secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = next_class_event(&mut students_page).await;
    assert!(first.view.is_none(), "nothing shown yet");
    assert_eq!(next_class_event(&mut teachers_page).await.followers, 1);

    // The teacher explains a digit; the student gets its link and settings.
    let seven = preset(&mut teacher, 7).await.png;
    let request = ExplainRequest {
        image: seven,
        method: Method::EfficientPda as i32,
        window: 4,
        ..Default::default()
    };
    let mut run = teacher.explain(request).await.unwrap().into_inner();
    let Event::Started(started) = next_event(&mut run).await else {
        panic!("the run starts");
    };
    let view = ClassView {
        explanation_id: started.id.clone(),
        model: "digits".into(),
        method: Method::EfficientPda as i32,
        window: 4,
        stride: 1,
        samples: 10,
        class_index: None,
        see: "3".into(),
        budget: Some(0.5),
    };
    let teach = |view: ClassView, secret: &str| TeachRequest {
        code: opened.code.clone(),
        teacher_secret: secret.into(),
        view: Some(view),
    };
    let bad = ClassView {
        see: "<script>".into(),
        ..view.clone()
    };
    let refused = teacher
        .teach(teach(bad, &opened.teacher_secret))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let over_budget = ClassView {
        budget: Some(2.0),
        ..view.clone()
    };
    let refused = teacher
        .teach(teach(over_budget, &opened.teacher_secret))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("budget"), "{refused:?}");
    let refused = student
        .teach(teach(view.clone(), "a student's guess"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    teacher
        .teach(teach(view.clone(), &opened.teacher_secret))
        .await
        .unwrap();
    let shown = next_class_event(&mut students_page).await;
    assert_eq!(shown.view.as_ref(), Some(&view));
    // Through the id the student watches the teacher's run itself.
    let mut watched = student
        .watch(WatchRequest {
            id: started.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let Event::Started(seen) = next_event(&mut watched).await else {
        panic!("the watcher sees the run");
    };
    assert_eq!(seen.id, started.id);

    // Closing ends the class for everyone: a last event says so.
    let close = |secret: &str| CloseClassRequest {
        code: opened.code.clone(),
        teacher_secret: secret.into(),
    };
    let refused = student.close_class(close("guess")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    teacher
        .close_class(close(&opened.teacher_secret))
        .await
        .unwrap();
    let last = loop {
        let event = next_class_event(&mut students_page).await;
        if event.ended {
            break event;
        }
    };
    assert!(last.ended);
    let gone = student
        .follow_class(FollowClassRequest {
            code: opened.code.clone(),
            teacher_secret: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
}

async fn next_class_event(stream: &mut tonic::Streaming<ClassEvent>) -> ClassEvent {
    tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("a class event within 30 s")
        .unwrap()
        .expect("the class stream goes on")
}

/// Issue 22: a class link carries a token nobody guesses; typed codes that
/// match no class are limited per client, and so are open classes.
#[tokio::test]
async fn strangers_cannot_guess_their_way_into_a_class() {
    use lens_worker::server::{CLASSROOMS_PER_CLIENT, MISSES_PER_PERIOD};
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let mut opened = Vec::new();
    for _ in 0..CLASSROOMS_PER_CLIENT {
        opened.push(
            client
                .open_class(OpenClassRequest {})
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let refused = client.open_class(OpenClassRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("close one first"), "{refused:?}");

    let class = &opened[0];
    assert!(class.link_token.len() >= 32 && class.link_token != class.code);
    let follow = |code: &str| FollowClassRequest {
        code: code.into(),
        teacher_secret: String::new(),
    };
    for guess in 0..MISSES_PER_PERIOD {
        let missed = client
            .follow_class(follow(&format!("Z{guess:05}")))
            .await
            .unwrap_err();
        assert_eq!(missed.code(), Code::NotFound, "{missed:?}");
    }
    let limited = client.follow_class(follow(&class.code)).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(limited.message().contains("try again in"), "{limited:?}");
    // The link's token still opens the class, and tells its code.
    let mut by_link = client
        .follow_class(follow(&class.link_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_class_event(&mut by_link).await.code, class.code);
    // The teacher behind the same address still teaches and closes the
    // class by its code: the secret proves the calls belong to it.
    client
        .teach(TeachRequest {
            code: class.code.clone(),
            teacher_secret: class.teacher_secret.clone(),
            view: Some(ClassView::default()),
        })
        .await
        .unwrap();
    client
        .close_class(CloseClassRequest {
            code: class.code.clone(),
            teacher_secret: class.teacher_secret.clone(),
        })
        .await
        .unwrap();
}
