//! Clients of a running worker: native gRPC and gRPC-Web, streams read to
//! their end with arrival times, and `/metrics` scraped and parsed.

use lens_proto::v1::evidence_lens_client::EvidenceLensClient;
use lens_proto::v1::{ExplainEvent, ExplainRequest, ListPresetsRequest, Preset};
use std::net::SocketAddr;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::fixtures::{bad_requests, minutes_of_work};

/// What a client of the service runs over (a native channel, gRPC-Web):
/// the bounds tonic's generated client asks of its transport, written once.
pub trait Transport:
    tonic::client::GrpcService<
    tonic::body::Body,
    Error: Into<StdError>,
    ResponseBody: tonic::codegen::Body<
        Data = tonic::codegen::Bytes,
        Error: Into<StdError> + Send,
    > + Send
                      + 'static,
>
{
}

impl<T> Transport for T where
    T: tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<StdError>,
        ResponseBody: tonic::codegen::Body<
            Data = tonic::codegen::Bytes,
            Error: Into<StdError> + Send,
        > + Send
                          + 'static,
    >
{
}

type StdError = Box<dyn std::error::Error + Send + Sync>;

pub async fn native_client(address: SocketAddr) -> EvidenceLensClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    EvidenceLensClient::new(channel)
}

/// What a page adds to every call: its browser id (`x-lens-browser`).
#[derive(Clone)]
pub struct BrowserId(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for BrowserId {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("x-lens-browser", self.0.clone());
        Ok(request)
    }
}

pub type BrowserClient =
    EvidenceLensClient<tonic::service::interceptor::InterceptedService<Channel, BrowserId>>;

/// A native client that names itself as browser `id`, as a page does (a
/// class behind one address: each page its own id, every request from the
/// same address).
pub async fn browser_client(address: SocketAddr, id: &str) -> BrowserClient {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    EvidenceLensClient::with_interceptor(channel, BrowserId(id.parse().unwrap()))
}

pub type WebService = tonic_web::GrpcWebClientService<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        tonic_web::GrpcWebCall<tonic::body::Body>,
    >,
>;

/// A client that speaks gRPC-Web over HTTP/1.1, as the browser does.
pub fn web_client(address: SocketAddr) -> EvidenceLensClient<WebService> {
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let service = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http1);
    EvidenceLensClient::with_origin(service, format!("http://{address}").parse().unwrap())
}

/// The preset digit with this label, fetched over gRPC.
pub async fn preset<T>(client: &mut EvidenceLensClient<T>, label: u32) -> Preset
where
    T: Transport,
{
    let presets = presets(client).await;
    assert_eq!(presets.len(), 10, "one preset per digit class");
    presets.into_iter().find(|p| p.label == label).unwrap()
}

/// The digits' presets (held-out digits), fetched over gRPC.
pub async fn presets<T>(client: &mut EvidenceLensClient<T>) -> Vec<Preset>
where
    T: Transport,
{
    client
        .list_presets(ListPresetsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .presets
}

/// Every event of one explanation with the time it arrived.
pub async fn collect_events<T>(
    client: &mut EvidenceLensClient<T>,
    request: ExplainRequest,
) -> Result<Vec<(Instant, ExplainEvent)>, tonic::Status>
where
    T: Transport,
{
    let stream = client.explain(request).await?.into_inner();
    drain(stream).await
}

/// Every event of a share link (live or stored) with the time it arrived.
pub async fn watch_events<T>(
    client: &mut EvidenceLensClient<T>,
    id: &str,
) -> Result<Vec<(Instant, ExplainEvent)>, tonic::Status>
where
    T: Transport,
{
    let request = lens_proto::v1::WatchRequest { id: id.to_string() };
    let stream = client.watch(request).await?.into_inner();
    drain(stream).await
}

/// Reads a stream to its end, noting when each event arrived.
pub async fn drain(
    mut stream: tonic::Streaming<ExplainEvent>,
) -> Result<Vec<(Instant, ExplainEvent)>, tonic::Status> {
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push((Instant::now(), event));
    }
    Ok(events)
}

/// The parts of a finished stream, checked for shape on the way.
pub struct Streamed {
    pub started: lens_proto::v1::Started,
    pub finished: lens_proto::v1::Finished,
    /// The map assembled from the tiles (28 x 28, row-major).
    pub map: Vec<f32>,
    /// The other classes' maps (sent after the last tile).
    pub class_maps: Vec<lens_proto::v1::ClassMap>,
    /// The first coarse map and when it arrived, if the run streamed one.
    pub coarse: Option<(Instant, Vec<f32>)>,
    /// When each final tile arrived.
    pub tile_times: Vec<Instant>,
    pub finished_at: Instant,
}

/// Checks the order of events (places in the queue if any, Started, an
/// optional coarse map covering the whole image (several for a budgeted
/// run), tiles, the other classes'
/// maps, Finished), that the
/// final tiles cover the image exactly once with growing progress, and
/// assembles the map.
pub fn assemble(events: Vec<(Instant, ExplainEvent)>) -> Streamed {
    use lens_proto::v1::explain_event::Event;
    // A run that waited for the device says so first; one that moved to
    // another worker (hosted with several) says so where it moved.
    let mut events = events
        .into_iter()
        .filter(|(_, e)| !matches!(e.event, Some(Event::Moved(_))))
        .skip_while(|(_, e)| matches!(e.event, Some(Event::Queued(_))));
    let Some((
        _,
        ExplainEvent {
            event: Some(Event::Started(started)),
        },
    )) = events.next()
    else {
        panic!("the first event must be Started");
    };
    let input = started.input.clone().expect("Started carries the input");
    let (width, height) = (input.width as usize, input.height as usize);
    let mut map = vec![f32::NAN; width * height];
    let mut covered = vec![0u32; width * height];
    let mut tile_times = Vec::new();
    let mut coarse = None;
    let mut last_done = 0;
    let mut class_maps = Vec::new();
    for (at, event) in events {
        match event.event {
            Some(Event::Tile(tile)) if tile.coarse => {
                // A budgeted run sends several, sharper each time.
                assert!(tile_times.is_empty(), "coarse maps come before any tile");
                assert!(tile.windows_done >= last_done, "progress only grows");
                assert_eq!((tile.x, tile.y), (0, 0));
                assert_eq!((tile.width, tile.height), (input.width, input.height));
                last_done = tile.windows_done;
                coarse.get_or_insert((at, tile.values));
            }
            Some(Event::Tile(tile)) => {
                assert!(class_maps.is_empty(), "other classes' maps come last");
                assert!(tile.windows_done >= last_done, "progress only grows");
                assert_eq!(tile.total_windows, started.total_windows);
                last_done = tile.windows_done;
                tile_times.push(at);
                for row in 0..tile.height as usize {
                    for col in 0..tile.width as usize {
                        let i = (tile.y as usize + row) * width + tile.x as usize + col;
                        covered[i] += 1;
                        map[i] = tile.values[row * tile.width as usize + col];
                    }
                }
            }
            Some(Event::ClassMap(class_map)) => {
                assert_eq!(class_map.values.len(), width * height);
                assert_ne!(class_map.class_index, started.explained_class);
                class_maps.push(class_map);
            }
            Some(Event::Finished(finished)) => {
                assert!(
                    covered.iter().all(|&n| n == 1),
                    "tiles cover every pixel once"
                );
                assert_eq!(last_done, started.total_windows);
                return Streamed {
                    started,
                    finished,
                    map,
                    class_maps,
                    coarse,
                    tile_times,
                    finished_at: at,
                };
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    panic!("the stream ended without Finished");
}

/// Sends every request of `bad_requests` and checks each is refused with
/// INVALID_ARGUMENT and a message that names the problem.
pub async fn refuses_each_bad_request<T>(client: &mut EvidenceLensClient<T>, good_png: &[u8])
where
    T: Transport,
{
    for (what, request, expected) in bad_requests(good_png) {
        let status = collect_events(client, request).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
        assert!(
            status.message().contains(expected),
            "{what}: {:?}",
            status.message()
        );
    }
}

/// `GET /metrics` from `address`: the Prometheus text, checked for its
/// content type.
pub fn scrape_metrics(address: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the metrics port answers");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// Prometheus text as samples (`name{labels}` as written, to its value).
/// Panics on a line that is not a comment or `name[{labels}] value`, and
/// on a sample whose metric has no `# TYPE` line before it.
pub fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert_eq!(series.contains('{'), series.ends_with('}'), "{line}");
        let family = ["_bucket", "_sum", "_count", ""].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            typed.contains(base).then_some(base)
        });
        assert!(family.is_some(), "no # TYPE before {line}");
        samples.insert(series.to_string(), value);
    }
    samples
}

/// Starts minutes of work on `image` and reads its stream up to Started
/// (the run is on the device), for tests that act while a run goes on;
/// dropping the stream leaves the run.
pub async fn long_run_started<T>(
    client: &mut EvidenceLensClient<T>,
    image: Vec<u8>,
) -> tonic::Streaming<ExplainEvent>
where
    T: Transport,
{
    use lens_proto::v1::explain_event::Event;
    let mut stream = client
        .explain(minutes_of_work(image))
        .await
        .unwrap()
        .into_inner();
    loop {
        let event = stream
            .message()
            .await
            .unwrap()
            .expect("the long run starts");
        if matches!(event.event, Some(Event::Started(_))) {
            return stream;
        }
    }
}
