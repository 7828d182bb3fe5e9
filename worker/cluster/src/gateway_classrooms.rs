//! A gateway's classes, shared with every other gateway through NATS
//! (`cluster::classes`): a class opened here is put in the bucket; a class
//! a request names that this gateway does not have is looked up there and
//! copied here; teaching and closing go to the bucket, and each gateway
//! that has a copy follows the record's changes. The checks (teacher's
//! secret, views) stay those of `Classrooms`; the limits per client (codes
//! that matched nothing, classes open at once) are counted cluster-wide
//! (`cluster::quotas`) as well as here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use lens_proto::v1::{
    ClassOpened, CloseClassRequest, CloseClassResponse, FollowClassRequest, TeachRequest,
    TeachResponse,
};
use tonic::{Response, Status};

use crate::classroom_board::{ClassroomBoard, COUNT_EVERY, COUNT_LIFETIME};
use crate::messages::ClassRecord;
use crate::quotas::{Place, Quotas};
use crate::ClusterError;
use lens_server::classrooms::{self, ClassroomCopy, Classrooms};
use lens_server::client::{address_key, Client};
use lens_server::limits::{self, Limit};
use lens_server::misses;
use lens_server::status::ServiceError;

pub struct GatewayClassrooms {
    classrooms: Arc<Classrooms>,
    board: ClassroomBoard,
    quotas: Arc<Quotas>,
    /// This gateway's name among the counts of followers.
    gateway: String,
    /// The classes whose changes this gateway follows.
    followed: Mutex<HashSet<String>>,
}

impl GatewayClassrooms {
    /// Classrooms shared through NATS at `nats_url`, for gateway `gateway`.
    pub async fn open(
        nats_url: &str,
        classrooms: Arc<Classrooms>,
        quotas: Arc<Quotas>,
        gateway: String,
    ) -> Result<Arc<Self>, ClusterError> {
        Ok(Arc::new(GatewayClassrooms {
            classrooms,
            board: ClassroomBoard::open(nats_url).await?,
            quotas,
            gateway,
            followed: Mutex::default(),
        }))
    }

    /// Opens a class here and puts it in the bucket (a code another
    /// gateway's class has is given up and another drawn). The client's
    /// place among its open classes is held until the class ends here.
    pub async fn open_class(
        self: &Arc<Self>,
        client: Client,
    ) -> Result<Response<ClassOpened>, Status> {
        let place = match Limit::classrooms_opened(classrooms::CLASSROOMS_PER_CLIENT, &client) {
            None => None,
            Some(limit) => Some(limits::take(&self.quotas, limit).await?),
        };
        loop {
            let opened = classrooms::open_class(&self.classrooms, &client)?.into_inner();
            let record = self.record(&opened.code, false)?;
            match self.board.create(&opened.code, &record).await {
                Ok(true) => {
                    self.follow_changes(opened.code.clone(), place);
                    return Ok(Response::new(opened));
                }
                Ok(false) => self.classrooms.apply(&opened.code, None, true),
                Err(error) => {
                    self.classrooms.apply(&opened.code, None, true);
                    return Err(ServiceError::from(error).into());
                }
            }
        }
    }

    pub async fn teach(
        self: &Arc<Self>,
        request: TeachRequest,
        client: Client,
    ) -> Result<Response<TeachResponse>, Status> {
        let code = self
            .class_here(&request.code, &client, &request.teacher_secret)
            .await?;
        let answer = classrooms::teach(&self.classrooms, request, &client)?;
        if let Some(code) = code {
            let record = self.record(&code, false)?;
            self.board
                .put(&code, &record)
                .await
                .map_err(ServiceError::from)?;
        }
        Ok(answer)
    }

    pub async fn follow_class(
        self: &Arc<Self>,
        request: FollowClassRequest,
        client: Client,
    ) -> Result<Response<classrooms::ClassroomStream>, Status> {
        let code = self
            .class_here(&request.code, &client, &request.teacher_secret)
            .await?;
        let student = request.teacher_secret.is_empty();
        let following = classrooms::follow_class(&self.classrooms, request, &client)?;
        if let (Some(code), Some(browser), true) = (code, &client.browser, student) {
            self.board
                .joined(&code, browser)
                .await
                .map_err(ServiceError::from)?;
        }
        Ok(following)
    }

    pub async fn close_class(
        self: &Arc<Self>,
        request: CloseClassRequest,
        client: Client,
    ) -> Result<Response<CloseClassResponse>, Status> {
        let code = self
            .class_here(&request.code, &client, &request.teacher_secret)
            .await?;
        let ended = code
            .as_deref()
            .map(|code| self.record(code, true))
            .transpose()?;
        let answer = classrooms::close_class(&self.classrooms, request, &client)?;
        if let (Some(code), Some(ended)) = (code, ended) {
            self.board
                .put(&code, &ended)
                .await
                .map_err(ServiceError::from)?;
        }
        Ok(answer)
    }

    /// The class's record from its copy here.
    fn record(&self, code: &str, ended: bool) -> Result<ClassRecord, ServiceError> {
        let class = self
            .classrooms
            .shared(code)
            .ok_or_else(|| ServiceError::NoClassroom { code: code.into() })?;
        Ok(ClassRecord {
            token: class.token,
            teacher_hash: class.teacher.to_vec(),
            view: class.view,
            ended,
        })
    }

    /// The code of the class a request names, copied here from the bucket
    /// if another gateway opened it; `None` when no gateway has it (the
    /// local look-up then refuses it). A client whose typed codes matched
    /// nothing too often, through any gateway, is refused a while, unless
    /// the call proves it belongs to the class: `teacher_secret` is the
    /// class's, or the browser followed it before (through any gateway).
    async fn class_here(
        self: &Arc<Self>,
        code_or_token: &str,
        client: &Client,
        teacher_secret: &str,
    ) -> Result<Option<String>, ServiceError> {
        let typed = code_or_token.trim().len() <= classrooms::CODE_LENGTH;
        let misses = client
            .address
            .filter(|_| typed)
            .map(|ip| address_key("m", ip));
        let code = code_or_token.trim().to_ascii_uppercase();
        let rejoining = match &client.browser {
            Some(browser) if typed && code.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                self.board.has_joined(&code, browser).await?
            }
            _ => false,
        };
        let proves = |teacher: &[u8; 32]| {
            rejoining
                || (!teacher_secret.is_empty()
                    && lens_store::hash_secret(teacher_secret) == *teacher)
        };
        if let Some(code) = self.classrooms.code_here(code_or_token) {
            let proven = (self.classrooms.shared(&code)).is_some_and(|c| proves(&c.teacher));
            if !proven {
                self.check_misses(misses.as_deref()).await?;
            }
            if rejoining {
                self.classrooms.remember(&code, client);
            }
            return Ok(Some(code));
        }
        let Some((code, record)) = self
            .board
            .find(code_or_token, classrooms::CODE_LENGTH)
            .await?
        else {
            self.check_misses(misses.as_deref()).await?;
            if let Some(key) = &misses {
                self.quotas.missed(key).await?;
            }
            return Ok(None);
        };
        let teacher: [u8; 32] = record
            .teacher_hash
            .as_slice()
            .try_into()
            .map_err(|_| ServiceError::Internal(format!("class {code}: a damaged record")))?;
        if !proves(&teacher) {
            self.check_misses(misses.as_deref()).await?;
        }
        let class = ClassroomCopy {
            token: record.token,
            teacher,
            view: record.view,
        };
        self.classrooms.adopt(&code, class)?;
        if rejoining {
            // This gateway's own count of misses must not refuse it either.
            self.classrooms.remember(&code, client);
        }
        self.follow_changes(code.clone(), None);
        Ok(Some(code))
    }

    /// Refuses a client (its misses' quota key) that missed too often.
    async fn check_misses(&self, key: Option<&str>) -> Result<(), ServiceError> {
        match key {
            Some(key) => misses::check(&self.quotas.misses(key).await?, misses::now_ms()),
            None => Ok(()),
        }
    }

    /// Follows the class's record and the other gateways' counts of its
    /// followers until it ends here, and tells them this gateway's count;
    /// `place` (its opener's) is held until then.
    fn follow_changes(self: &Arc<Self>, code: String, place: Option<Place>) {
        let new = self
            .followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(code.clone());
        if !new {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            while this.classrooms.followers_here(&code).is_some() {
                if let Err(error) = this.mirror(&code).await {
                    tracing::warn!("class {code}: {error}; following it again");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            this.followed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&code);
            // The class ended here: this gateway's followers are gone.
            let _ = this.board.count(&code, &this.gateway, 0).await;
            drop(place);
        });
    }

    /// One watch of the class, until it ends here or the watch breaks.
    async fn mirror(&self, code: &str) -> Result<(), ClusterError> {
        let mut records = self.board.watch(code).await?;
        let mut counts = self.board.watch_counts(code).await?;
        // Other gateways' counts and when each was last renewed.
        let mut elsewhere: HashMap<String, (u32, Instant)> = HashMap::new();
        let mut told: Option<(u32, Instant)> = None;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tokio::select! {
                record = records.next() => {
                    let Some(record) = record else {
                        return Err(ClusterError::Nats("the class's watch ended".into()));
                    };
                    self.classrooms.apply(code, record.view, record.ended);
                    if record.ended {
                        return Ok(());
                    }
                }
                count = counts.next() => {
                    let Some((gateway, followers)) = count else {
                        return Err(ClusterError::Nats("the followers' watch ended".into()));
                    };
                    if gateway != self.gateway {
                        elsewhere.insert(gateway, (followers, Instant::now()));
                    }
                }
                _ = tick.tick() => {
                    let Some(here) = self.classrooms.followers_here(code) else {
                        return Ok(());
                    };
                    let due = told.is_none_or(|(n, at)| n != here || at.elapsed() >= COUNT_EVERY);
                    if due {
                        self.board.count(code, &self.gateway, here).await?;
                        told = Some((here, Instant::now()));
                    }
                }
            }
            // A gateway that stopped renewing its count is gone.
            elsewhere.retain(|_, (_, at)| at.elapsed() < COUNT_LIFETIME);
            let total = elsewhere.values().map(|(n, _)| n).sum();
            self.classrooms.set_followers_elsewhere(code, total);
        }
    }
}
