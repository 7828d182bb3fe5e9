//! Issue 22: a class across gateways. A class opened through one gateway is
//! followed through another (by its link and by its code), the teacher
//! teaches through either, sees every follower wherever connected, and
//! closing it ends it for everyone. Real processes: two gateways, a
//! private NATS and a private PostgreSQL.

use std::time::Duration;

use lens_proto::v1::{
    ClassEvent, ClassView, CloseClassRequest, FollowClassRequest, OpenClassRequest, TeachRequest,
};
use lens_tests::cluster::Services;
use lens_tests::native_client;
use tonic::Code;

type ClassroomStream = tonic::Streaming<ClassEvent>;

/// The first event of `stream` that `wanted` accepts (within 20 s).
async fn until(
    stream: &mut ClassroomStream,
    what: &str,
    wanted: impl Fn(&ClassEvent) -> bool,
) -> ClassEvent {
    let waiting = async {
        loop {
            let event = stream
                .message()
                .await
                .unwrap_or_else(|e| panic!("waiting for {what}: {e:?}"))
                .unwrap_or_else(|| panic!("the class ended while waiting for {what}"));
            if wanted(&event) {
                return event;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap_or_else(|_| panic!("{what} within 20 s"))
}

fn shows(id: &str) -> impl Fn(&ClassEvent) -> bool + '_ {
    move |e| e.view.as_ref().is_some_and(|v| v.explanation_id == id)
}

fn view(id: &str) -> Option<ClassView> {
    Some(ClassView {
        explanation_id: id.into(),
        model: "digits".into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_class_opened_through_one_gateway_is_followed_and_taught_through_another() {
    let services = Services::start();
    let (mut gateway_a, a) = services.gateway();
    let (mut gateway_b, b) = services.gateway();
    let (mut through_a, mut through_b) = (native_client(a).await, native_client(b).await);

    let opened = through_a
        .open_class(OpenClassRequest {})
        .await
        .unwrap()
        .into_inner();
    let follow = |code: &str, secret: &str| FollowClassRequest {
        code: code.into(),
        teacher_secret: secret.into(),
    };
    let mut teachers_page = through_a
        .follow_class(follow(&opened.code, &opened.teacher_secret))
        .await
        .unwrap()
        .into_inner();
    // A student by the class link through B learns the code from it; one
    // who typed the code (in lower case) follows through A.
    let mut by_link = through_b
        .follow_class(follow(&opened.link_token, ""))
        .await
        .unwrap()
        .into_inner();
    let first = until(&mut by_link, "the class", |_| true).await;
    assert_eq!(first.code, opened.code);
    let mut by_code = through_b
        .follow_class(follow(&opened.code.to_lowercase(), ""))
        .await
        .unwrap()
        .into_inner();
    let mut on_a = through_a
        .follow_class(follow(&opened.code, ""))
        .await
        .unwrap()
        .into_inner();
    // The teacher counts every follower, wherever connected.
    until(&mut teachers_page, "three followers", |e| e.followers == 3).await;

    // Teaching through A reaches the students on B, and the teacher's page
    // reconnecting through B teaches from there.
    let ids: Vec<String> = (0..2).map(|_| lens_worker::store::new_id()).collect();
    let teach = |id: &str| TeachRequest {
        code: opened.code.clone(),
        teacher_secret: opened.teacher_secret.clone(),
        view: view(id),
    };
    through_a.teach(teach(&ids[0])).await.unwrap();
    until(&mut by_link, "the view taught through A", shows(&ids[0])).await;
    through_b.teach(teach(&ids[1])).await.unwrap();
    until(&mut on_a, "the view taught through B", shows(&ids[1])).await;
    until(&mut by_code, "the view taught through B", shows(&ids[1])).await;
    // Only the teacher teaches, through either gateway.
    let stranger = TeachRequest {
        teacher_secret: "a guess".into(),
        ..teach(&ids[0])
    };
    let refused = through_b.teach(stranger).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // A student on B leaves: the teacher's count follows.
    drop(by_code);
    until(&mut teachers_page, "two followers", |e| e.followers == 2).await;

    // Closing through B ends the class for everyone, on both gateways.
    through_b
        .close_class(CloseClassRequest {
            code: opened.code.clone(),
            teacher_secret: opened.teacher_secret.clone(),
        })
        .await
        .unwrap();
    for (who, stream) in [
        ("the student on A", &mut on_a),
        ("the student on B", &mut by_link),
        ("the teacher's page", &mut teachers_page),
    ] {
        until(stream, &format!("the end, for {who}"), |e| e.ended).await;
    }
    for client in [&mut through_a, &mut through_b] {
        let gone = client
            .follow_class(follow(&opened.code, ""))
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    }
    assert!(gateway_a.stop("TERM").await.success());
    assert!(gateway_b.stop("TERM").await.success());
}
