//! `InspectWindow` over gRPC: a stored explanation's window recomputed on
//! the worker gives the numbers the map was made from: with stride equal
//! to the window every pixel of a window shows its evidence, and P(class)
//! without the window is the run's own; methods without windows and places
//! that are no window are refused with the reason.

use lens_proto::v1::{ExplainRequest, InspectWindowRequest, Method};
use lens_tests::{assemble, collect_events, native_client, preset, start_worker};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspected_window_shows_what_the_map_was_made_of() {
    let address = start_worker().await;
    let mut client = native_client(address).await;
    let image = preset(&mut client, 7).await.png;
    for (method, samples) in [(Method::EfficientPda, None), (Method::Pda, Some(6))] {
        let run = assemble(
            collect_events(
                &mut client,
                ExplainRequest {
                    image: image.clone(),
                    method: method as i32,
                    window: 4,
                    stride: 4,
                    samples,
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
        let id = run.finished.id.clone();
        // Positions 0, 4, ..., 24 along each side: 7 x 7 windows.
        for (x, y) in [(0u32, 0u32), (12, 8), (24, 24), (8, 16)] {
            let seen = client
                .inspect_window(InspectWindowRequest {
                    id: id.clone(),
                    x,
                    y,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!((seen.x, seen.y, seen.size), (x, y, 4));
            let s = samples.unwrap_or(1) as usize;
            assert_eq!(seen.p_samples.len(), s, "{method:?}");
            assert_eq!(seen.replacements.len(), s * 16);
            for row in y..y + 4 {
                for col in x..x + 4 {
                    assert_eq!(
                        run.map[(row * 28 + col) as usize],
                        seen.evidence as f32,
                        "{method:?}: pixel ({col}, {row}) of the window at ({x}, {y})"
                    );
                }
            }
            let position = (y / 4 * 7 + x / 4) as usize;
            assert_eq!(
                run.finished.window_probabilities[position], seen.p_without as f32,
                "{method:?}"
            );
            assert_eq!(
                run.finished.probabilities[seen.explained_class as usize],
                seen.p_with as f32
            );
        }
        let nowhere = client
            .inspect_window(InspectWindowRequest {
                id: id.clone(),
                x: 2,
                y: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(nowhere.code(), Code::InvalidArgument);
        assert!(nowhere.message().contains("no window"), "{nowhere:?}");
    }

    let gradient = assemble(
        collect_events(
            &mut client,
            ExplainRequest {
                image,
                method: Method::Gradient as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap(),
    );
    let refused = client
        .inspect_window(InspectWindowRequest {
            id: gradient.finished.id,
            x: 0,
            y: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("replaces no window"),
        "{refused:?}"
    );
}
