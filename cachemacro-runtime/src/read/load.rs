//! The load path: one load per key at a time (L2, then the function), the fills that keep a
//! load from undoing an invalidation, refreshes ahead of expiry, and what a load does when
//! its source is slow or failing (see `resilience`). The lookup path, which comes first, is
//! in [`read`](super).

use super::*;

impl Cache {
    /// The read path of `get_or_set`: L1, then one load per key at a time (L2, then `fut`).
    #[inline]
    pub(crate) async fn read_through<M, R, F>(
        &self,
        skey: String,
        ttl: Option<Duration>,
        share: Option<Share<R>>,
        fut: F,
    ) -> R
    where
        M: Mode<R>,
        F: Future<Output = R>,
    {
        if self.is_shut_down() {
            return as_body(None, fut).await;
        }
        if let Some(value) = self.l1_get::<M::Value>(&skey) {
            return M::wrap(value);
        }
        let options = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        Box::pin(self.load::<M, R, _>(skey, options, share, Here(fut))).await
    }

    /// The miss path: join or lead the flight for `skey`.
    pub(crate) async fn load<M, R, B>(
        &self,
        skey: String,
        options: LoadOptions,
        share: Option<Share<R>>,
        body: B,
    ) -> R
    where
        M: Mode<R>,
        B: Run<M, R> + Solo<R>,
    {
        if crate::key::is_unkeyable(&skey) {
            // A key part could not be written: two calls would share this key.
            return self.solo(body, &options.call).await;
        }
        match self.follow_or_lead::<M::Value>(&skey).await {
            Joined::Value(value) => {
                options.call.ended(Ended::Joined);
                M::wrap(value)
            }
            Joined::Lead(leader) => {
                self.lead::<M, R, B>(leader, skey, options, share, body)
                    .await
            }
            Joined::Shared(shared) => match unwrap_shared(share, &shared) {
                Some(r) => {
                    options.call.ended(Ended::Joined);
                    r
                }
                None => self.solo(body, &options.call).await,
            },
            Joined::Solo => self.solo(body, &options.call).await,
        }
    }

    /// Runs the body for this caller alone; its result is not cached.
    async fn solo<R, B: Solo<R>>(&self, body: B, call: &Call) -> R {
        crate::stats::bump(&self.inner.counters.loads);
        call.load_started();
        body.run_alone().await
    }

    /// Loads `skey` for every caller waiting on it: from L2, else by running the body.
    async fn lead<M, R, B>(
        &self,
        mut leader: Leader,
        skey: String,
        options: LoadOptions,
        share: Option<Share<R>>,
        body: B,
    ) -> R
    where
        M: Mode<R>,
        B: Run<M, R>,
    {
        // Before anything is read: a tag the body chooses counts its invalidations from here.
        let decision = Decision::new(self.inner.tag_log.position());
        leader.land_in(options.call.site.and_then(Site::share));
        let plan = self.plan(&options, body.detachable());
        let tags: Vec<TagKeys> = options.tags.iter().map(|t| self.tag_keys(t)).collect();
        let mut target = Target {
            version: options.version,
            // The connection the load reads on; it fills only on the same one.
            epoch: self.inner.l2.as_ref().map_or(0, |l2| l2.link().epoch()),
        };
        let mut stale = if plan.stale_for.is_zero() {
            None
        } else {
            self.l1_stale::<M::Value>(&skey, plan.stale_for)
        };
        // Registered here too, whatever Redis does: this process's own copy must be found
        // by a tag invalidation even when Redis loses the tag's set (evicted, or lost in a
        // restart or failover), and a peer's message finds it the same way.
        self.register_local_tags(&tags, &skey);
        let (seen, lease) = match &self.inner.l2 {
            None => (Seen::Unknown, None),
            Some(l2) => {
                let seen = match self
                    .l2_lookup::<M::Value>(l2, &skey, options.version, &tags, &plan)
                    .await
                {
                    Lookup::Hit(value, found, _) => {
                        let out = M::Value::clone(&value);
                        self.land_l2_hit(leader, value, found, &plan);
                        options.call.ended(Ended::L2Hit);
                        return M::wrap(out);
                    }
                    Lookup::Stale(from_l2, bytes) => {
                        stale.get_or_insert(from_l2);
                        Seen::Bytes(bytes)
                    }
                    Lookup::Miss(seen) => seen,
                    Lookup::Failed(err) => {
                        // Fail open: the function still answers while Redis is away.
                        if !matches!(err, Error::Unavailable { .. }) {
                            warn_throttled!(key = %skey, error = %err, "cache: Redis read failed, loading without it");
                        }
                        Seen::Unknown
                    }
                };
                match plan.fleet {
                    // One instance of the fleet loads a cold key for all of them.
                    Some(max_wait) if stale.is_none() && !matches!(seen, Seen::Unknown) => {
                        // Boxed, as the load below: a future holds room for its largest
                        // state, and an L2 hit should not move (or allocate) a load's.
                        match Box::pin(self.fleet_turn::<M::Value>(
                            l2,
                            &skey,
                            options.version,
                            &plan,
                            max_wait,
                        ))
                        .await
                        {
                            Turn::Value(value, age, fresh) => {
                                let out = M::Value::clone(&value);
                                let found = Found {
                                    age,
                                    fresh: Some(fresh),
                                };
                                self.land_l2_hit(leader, value, found, &plan);
                                options.call.ended(Ended::L2Hit);
                                return M::wrap(out);
                            }
                            Turn::Load(lease) if leader.is_stale() => {
                                // An invalidation (or a bus drop) came while this instance
                                // waited, before its load began: start afresh rather than
                                // load a value nobody may store.
                                match self
                                    .restart_load::<M::Value>(
                                        l2,
                                        &mut leader,
                                        &skey,
                                        &tags,
                                        &mut target,
                                        &plan,
                                    )
                                    .await
                                {
                                    Ok(seen) => (seen, lease),
                                    Err((value, found)) => {
                                        let out = M::Value::clone(&value);
                                        self.land_l2_hit(leader, value, found, &plan);
                                        options.call.ended(Ended::L2Hit);
                                        return M::wrap(out);
                                    }
                                }
                            }
                            Turn::Load(lease) => (seen, lease),
                        }
                    }
                    _ => (seen, None),
                }
            }
        };
        tracing::debug!(target: "cachemacro", key = %skey, "cache miss: loading");
        crate::stats::bump(&self.inner.counters.loads);
        options.call.load_started();
        let load = Load {
            cache: self.clone(),
            leader,
            skey,
            seen,
            target,
            plan,
            lease,
            announce: false,
            call: options.call,
            started: std::time::Instant::now(),
            decision,
            tagged: !tags.is_empty(),
        };
        // Boxed: the body's future (the function's own) and the store after it are most
        // of this future's size, which every L2 hit would otherwise move around.
        Box::pin(body.execute(load, stale, share)).await
    }

    /// Starts a fleet load afresh after its flight went stale while it waited: clears the
    /// mark (when the bus can report the next one), registers the tags again and reads
    /// Redis again, on the connection the fill will use, for what the fill compares
    /// against. A value found there is returned instead (`Err`).
    async fn restart_load<T: CacheValue>(
        &self,
        l2: &L2,
        leader: &mut Leader,
        skey: &str,
        tags: &[TagKeys],
        target: &mut Target,
        plan: &Plan,
    ) -> Result<Seen, (Arc<T>, Found)> {
        if !self.bus_connected() || !leader.restart() {
            // It stays stale: the load's value is handed to the callers, not stored.
            return Ok(Seen::Unknown);
        }
        crate::stats::bump(&self.inner.counters.fleet_restarts);
        target.epoch = l2.link().epoch();
        // Registered again, here and in Redis: a tag invalidation meanwhile dropped them.
        self.register_local_tags(tags, skey);
        match self
            .l2_lookup::<T>(l2, skey, target.version, tags, plan)
            .await
        {
            Lookup::Hit(value, found, _) => Err((value, found)),
            Lookup::Stale(_, bytes) => Ok(Seen::Bytes(bytes)),
            Lookup::Miss(seen) => Ok(seen),
            Lookup::Failed(_) => Ok(Seen::Unknown),
        }
    }

    /// Waits for another instance to load `skey` into Redis, or takes its turn to load it:
    /// one instance takes a short lease on the key and loads, the others wait (woken by the
    /// bus when the value is stored, at most `max_wait`) and read it from Redis.
    async fn fleet_turn<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        version: u32,
        plan: &Plan,
        max_wait: Duration,
    ) -> Turn<T> {
        let lease = Lease::of(self.inner.layout.root(), skey, max_wait);
        let owner = self.inner.instance;
        match l2.try_lease(&lease.key, owner, lease.ttl).await {
            Ok(true) => return Turn::Load(Some(lease)),
            Ok(false) => {}
            // Redis cannot say: load without it.
            Err(_) => return Turn::Load(None),
        }
        crate::stats::bump(&self.inner.counters.fleet_waits);
        let deadline = tokio::time::Instant::now() + max_wait;
        let notify = self.inner.waiters.join(skey);
        let turn = loop {
            let woken = notify.notified();
            tokio::pin!(woken);
            // Registered before looking, so that a value stored meanwhile wakes it.
            woken.as_mut().enable();
            match self.l2_lookup::<T>(l2, skey, version, &[], plan).await {
                Lookup::Hit(
                    value,
                    Found {
                        age,
                        fresh: Some(fresh),
                    },
                    _,
                ) => break Turn::Value(value, age, fresh),
                Lookup::Failed(_) => break Turn::Load(None),
                _ => {}
            }
            // The loader may have gone: it gave up, or crashed and its lease expired.
            match l2.try_lease(&lease.key, owner, lease.ttl).await {
                Ok(true) => break Turn::Load(Some(lease)),
                Ok(false) => {}
                Err(_) => break Turn::Load(None),
            }
            tokio::select! {
                _ = woken => {}
                // A quarter of the lease's life: a crashed loader's lease (at most 2 s) is
                // taken over within 2.5 s.
                _ = tokio::time::sleep(lease.ttl / 4) => {}
                _ = tokio::time::sleep_until(deadline) => break Turn::Load(None),
            }
        };
        self.inner.waiters.leave(skey, notify);
        turn
    }

    /// Refreshes `skey` ahead of its expiry, in a task of its own: one instance of the
    /// fleet loads (the one that takes the lease), stores the value, and tells the others
    /// to drop their copies so that they read the new one from Redis.
    pub(super) async fn refresh_ahead<M, R>(
        self,
        leader: Leader,
        skey: String,
        options: LoadOptions,
        plan: Plan,
        body: Pin<Box<dyn Future<Output = R> + Send + 'static>>,
    ) where
        M: Mode<R>,
    {
        crate::stats::bump(&self.inner.counters.refreshes);
        let decision = Decision::new(self.inner.tag_log.position());
        // The call that found the value due has returned: the refresh has no span.
        let call = Call {
            span: tracing::Span::none(),
            ..options.call.clone()
        };
        let target = Target {
            version: options.version,
            epoch: self.inner.l2.as_ref().map_or(0, |l2| l2.link().epoch()),
        };
        let tags: Vec<TagKeys> = options.tags.iter().map(|t| self.tag_keys(t)).collect();
        self.register_local_tags(&tags, &skey);
        let (seen, lease) = match &self.inner.l2 {
            None => (Seen::Unknown, None),
            Some(l2) => {
                let lease = Lease::of(self.inner.layout.root(), &skey, plan.ttl);
                if !matches!(
                    l2.try_lease(&lease.key, self.inner.instance, lease.ttl)
                        .await,
                    Ok(true)
                ) {
                    // Another instance refreshes it (or Redis cannot say): its value
                    // reaches this one through Redis and the bus.
                    leader.fail(None);
                    return;
                }
                match self
                    .l2_lookup::<M::Value>(l2, &skey, options.version, &tags, &plan)
                    .await
                {
                    // Another instance refreshed it already: take its value.
                    Lookup::Hit(value, found, _)
                        if plan.refresh_at().is_some_and(|at| found.age < at) =>
                    {
                        self.land_l2_hit(leader, value, found, &plan);
                        let _ = l2
                            .release_lease(&lease.key, self.inner.instance, None)
                            .await;
                        return;
                    }
                    Lookup::Hit(_, _, bytes) | Lookup::Stale(_, bytes) => {
                        (Seen::Bytes(bytes), Some(lease))
                    }
                    Lookup::Miss(seen) => (seen, Some(lease)),
                    Lookup::Failed(_) => (Seen::Unknown, Some(lease)),
                }
            }
        };
        let load = Load {
            cache: self.clone(),
            leader,
            skey,
            seen,
            target,
            plan,
            lease,
            announce: true,
            started: std::time::Instant::now(),
            call,
            decision,
            tagged: !tags.is_empty(),
        };
        load.call.load_started();
        let body = crate::entry::scoped(Some(Arc::clone(&load.decision)), body);
        // The value the hit found stays until its own expiry, whatever the refresh does.
        let ran = load
            .holding_lease(resilience::run_guarded(body, plan.hard_timeout))
            .await;
        match ran {
            Ran::Done(r) => {
                let _ = load.done::<M, R>(r, None, None).await;
            }
            Ran::Panicked | Ran::TimedOut => load.refresh_failed().await,
        }
    }
}

/// Running a body for one caller alone, outside any flight.
pub trait Solo<R> {
    /// Runs it.
    fn run_alone(self) -> impl Future<Output = R>;
}

// The caller's `with_source` hears `Loaded`: a call that records nothing was an L1 hit.
impl<R, F: Future<Output = R>> Solo<R> for Here<F> {
    async fn run_alone(self) -> R {
        crate::source::report(Ended::Loaded);
        as_body(None, self.0).await
    }
}

impl<R> Solo<R> for Detached<R> {
    async fn run_alone(self) -> R {
        crate::source::report(Ended::Loaded);
        as_body(None, self.0).await
    }
}

/// `body` as a body runs: deciding its entry through `decision` (`None`: its value is not
/// stored, `entry()` changes nothing), and silenced, so that the cached calls it makes do
/// not answer the caller's `with_source`, nor decide its entry.
pub(crate) fn as_body<F: Future>(
    decision: Option<Arc<Decision>>,
    body: F,
) -> impl Future<Output = F::Output> {
    crate::entry::scoped(decision, crate::source::silenced(body))
}

impl Load {
    /// Runs `body` in the caller's task and ends the load. With a `stale` value to fall back
    /// on, a panic or the plan's hard timeout ends the body too, and the callers get the
    /// stale value; without one, the body's panic goes to the caller.
    pub(super) async fn run<M: Mode<R>, R, F: Future<Output = R>>(
        self,
        body: F,
        stale: Option<Stale<M::Value>>,
        share: Option<Share<R>>,
    ) -> R {
        let body = as_body(Some(Arc::clone(&self.decision)), body);
        match stale {
            Some(stale) => {
                let guarded = resilience::run_guarded(body, self.plan.hard_timeout);
                let ran = self.holding_lease(guarded).await;
                self.finish::<M, R>(ran, stale, share).await
            }
            None => {
                let r = self.holding_lease(body).await;
                self.done::<M, R>(r, None, share).await
            }
        }
    }

    /// Awaits `run`, renewing the fleet lease (when this load holds one) meanwhile.
    async fn holding_lease<F: Future>(&self, run: F) -> F::Output {
        match (&self.lease, &self.cache.inner.l2) {
            (Some(lease), Some(l2)) => {
                let held = resilience::hold(l2, lease, self.cache.inner.instance);
                tokio::pin!(held);
                tokio::select! {
                    out = run => out,
                    never = &mut held => match never {},
                }
            }
            _ => run.await,
        }
    }

    /// A refresh ahead that panicked or passed the hard timeout: a failed reload. The value
    /// it was refreshing stays until its own expiry (the next refresh is tried after the
    /// fail-safe throttle, see `Detached::refresh`), and the fleet's lease is given up.
    async fn refresh_failed(self) {
        self.call.load_ended(self.started.elapsed(), false);
        warn_throttled!(key = %self.skey, "cache: a refresh ahead failed (a panic, or past hard_timeout); the current value stays until it expires");
        self.fail(None).await;
    }

    /// Ends the load without a value to cache: the waiting callers get `shared` (or load
    /// for themselves), and the fleet's lease is given up.
    async fn fail(self, shared: Option<SharedFailure>) {
        let Load {
            cache,
            leader,
            skey,
            lease,
            ..
        } = self;
        leader.fail(shared);
        cache.release(lease, &skey).await;
    }

    /// Races a detached body against the soft (or hard) timeout: past it, the callers get
    /// the stale value, and the load goes on in the background until it finishes or the
    /// hard timeout passes.
    pub(super) async fn race<M, R>(
        self,
        body: Pin<Box<dyn Future<Output = R> + Send + 'static>>,
        stale: Stale<M::Value>,
        share: Option<Share<R>>,
    ) -> R
    where
        M: Mode<R> + Send + 'static,
        R: Send + 'static,
    {
        let plan = self.plan;
        let first = plan
            .soft_timeout
            .or(plan.hard_timeout)
            .unwrap_or(Duration::MAX);
        let mut handle = tokio::spawn(crate::entry::scoped(Some(Arc::clone(&self.decision)), body));
        // Whoever drops the load (a cancelled caller, an abandoned background task) ends
        // the body too.
        let abort = crate::background::AbortOnDrop(handle.abort_handle());
        tokio::select! {
            joined = &mut handle => return self.finish::<M, R>(Ran::joined(joined), stale, share).await,
            () = tokio::time::sleep(first) => {}
        }
        if plan.soft_timeout.is_none() {
            // The hard timeout: the reload counts as failed.
            handle.abort();
            return self.finish::<M, R>(Ran::TimedOut, stale, share).await;
        }
        // The soft timeout: the callers get the stale value now (and so does anyone who
        // asks meanwhile), while the reload goes on.
        self.leader.interim(
            &self.cache.inner.l1,
            stale.entry.refreshed_for(plan.throttle),
        );
        crate::stats::bump(&self.cache.inner.counters.stale_served);
        self.call.ended(Ended::Stale);
        // The call ends here; the reload goes on, counted for the function, outside it.
        let mut load = self;
        load.call.span = tracing::Span::none();
        let out = M::Value::clone(&stale.value);
        let rest = plan.hard_timeout.map(|hard| hard.saturating_sub(first));
        let background = Arc::clone(&load.cache.inner.background);
        background.spawn(async move {
            let _abort = abort;
            let ran = match rest {
                Some(rest) => match tokio::time::timeout(rest, &mut handle).await {
                    Ok(joined) => Ran::joined(joined),
                    Err(_) => {
                        handle.abort();
                        Ran::TimedOut
                    }
                },
                None => Ran::joined(handle.await),
            };
            let _ = load.finish::<M, R>(ran, stale, None).await;
        });
        M::wrap(out)
    }

    /// Ends a load that had a stale value to fall back on: with what the body gave, or with
    /// the stale value when the body panicked or passed the hard timeout.
    async fn finish<M: Mode<R>, R>(
        self,
        ran: Ran<R>,
        stale: Stale<M::Value>,
        share: Option<Share<R>>,
    ) -> R {
        match ran {
            Ran::Done(r) => self.done::<M, R>(r, Some(stale), share).await,
            Ran::Panicked | Ran::TimedOut => {
                self.call.load_ended(self.started.elapsed(), false);
                M::wrap(self.fall_back(stale).await)
            }
        }
    }

    /// Ends the load with what the body returned: stores a value (unless an invalidation
    /// came meanwhile), or falls back on the stale value, or hands the failure to the
    /// waiting callers.
    async fn done<M: Mode<R>, R>(
        self,
        r: R,
        stale: Option<Stale<M::Value>>,
        share: Option<Share<R>>,
    ) -> R {
        let took = self.started.elapsed();
        let value = M::split(&r);
        self.call.load_ended(took, value.is_some());
        let Some(value) = value else {
            if let Some(stale) = stale {
                return M::wrap(self.fall_back(stale).await);
            }
            self.fail(wrap_shared(share, &r)).await;
            return r;
        };
        let Load {
            cache,
            leader,
            skey,
            seen,
            target,
            mut plan,
            lease,
            announce,
            decision,
            tagged,
            ..
        } = self;
        let value = Arc::new(value);
        // What the body chose for its entry (`cachemacro::entry()`).
        let choice = decision.take();
        // In this process only, not in Redis: an entry whose tags Redis cannot be trusted to
        // list (see `EntryHandle::tag` and `EntryHandle::ttl`).
        let mut local = !choice.tags.is_empty();
        if let Some(ttl) = choice.ttl {
            let ttl = cache.jittered(ttl.min(crate::MAX_TTL));
            local |= tagged && ttl > plan.ttl;
            plan.ttl = ttl;
        }
        if choice.skip || choice.too_many_tags || plan.ttl.is_zero() {
            if choice.too_many_tags {
                warn_throttled!(key = %skey, max = crate::entry::MAX_ENTRY_TAGS, "cache: the body chose more tags than an entry takes; the value is not cached");
            }
            // The callers waiting get the value; neither tier stores it.
            leader.land(&cache.inner.l1, Entry::new(value, plan.ttl), false);
            cache.release(lease, &skey).await;
            return r;
        }
        // Registered before the log is asked: an invalidation of a chosen tag either comes
        // after the registration, and drops the entry (or marks the flight), or before the
        // question, which then finds it (see `TagLog`).
        let invalidated = !choice.tags.is_empty() && {
            let tags: Vec<TagKeys> = choice.tags.iter().map(|t| cache.tag_keys(t)).collect();
            cache.register_local_tags(&tags, &skey);
            cache
                .inner
                .tag_log
                .invalidated_since(decision.since, &choice.tags)
        };
        let store = if leader.is_stale() || invalidated {
            // Invalidated while it loaded (here, or by a peer's message, or because the bus
            // dropped): the value may predate the invalidation, so neither tier gets it,
            // whatever Redis holds now (it may have lost the tombstone in a restart).
            crate::stats::bump(&cache.inner.counters.stale_loads_dropped);
            false
        } else if !cache.bus_connected() {
            // This instance cannot hear invalidations right now, so it cannot tell whether
            // one came during the load: the value stays in this process (which clears its
            // memory when the bus is back) and out of Redis, where every instance would
            // trust it.
            true
        } else {
            let fill = cache
                .inner
                .l2
                .as_ref()
                .filter(|_| !local)
                .zip(seen.fill_if());
            match fill {
                Some((l2, seen)) => {
                    let stored = cache.fill(l2, &skey, seen, &*value, &target, &plan).await;
                    if stored == Some(true) && announce {
                        // The other instances drop their copies and read the new value.
                        let _ = cache.publish(Message::Remove(skey.clone())).await;
                    }
                    stored.is_some()
                }
                None => true,
            }
        };
        let times = plan.times(Duration::ZERO, plan.ttl);
        leader.land(&cache.inner.l1, Entry::with_times(value, times), store);
        cache.release(lease, &skey).await;
        r
    }

    /// Serves the stale value after a failed reload: to every caller waiting, and, as if
    /// fresh, to every caller for the fail-safe throttle (the next reload waits that long),
    /// unless an invalidation came meanwhile.
    async fn fall_back<T: CacheValue>(self, stale: Stale<T>) -> T {
        let Load {
            cache,
            leader,
            skey,
            plan,
            lease,
            call,
            ..
        } = self;
        crate::stats::bump(&cache.inner.counters.stale_served);
        call.ended(Ended::Stale);
        warn_throttled!(key = %skey, "cache: the reload failed; serving the stale value");
        leader.land(
            &cache.inner.l1,
            stale.entry.refreshed_for(plan.throttle),
            true,
        );
        cache.release(lease, &skey).await;
        T::clone(&stale.value)
    }
}

impl Cache {
    /// Gives up a fleet lease, waking the instances waiting for the key.
    async fn release(&self, lease: Option<Lease>, skey: &str) {
        let (Some(lease), Some(l2)) = (lease, &self.inner.l2) else {
            return;
        };
        let message = self.inner.bus.as_ref().map(|bus| {
            (
                bus.channel(),
                bus.payload(&Message::Filled(skey.to_owned())),
            )
        });
        let _ = l2
            .release_lease(
                &lease.key,
                self.inner.instance,
                message.as_ref().map(|(c, m)| (*c, m.as_str())),
            )
            .await;
    }

    /// Stores a loaded value in L2 unless the key changed since the load began. Returns
    /// whether it stored (`Some(true)`), whether L1 may keep the value alone (`Some(false)`:
    /// Redis is away, or the value is not for Redis), or `None` when the key changed (the
    /// value is dropped).
    pub(crate) async fn fill<T: CacheValue>(
        &self,
        l2: &L2,
        skey: &str,
        seen: FillIf<'_>,
        value: &T,
        target: &Target,
        plan: &Plan,
    ) -> Option<bool> {
        let life = Life::starting_now(plan.ttl);
        let bytes = match self.encode(skey, value, target.version, life, plan.timed()) {
            Ok(bytes) => bytes,
            Err(err) => {
                warn_throttled!(key = %skey, error = %err, "cache: value kept in this process only");
                return Some(false);
            }
        };
        match l2
            .fill(
                skey,
                seen,
                &bytes,
                plan.keep(),
                self.inner.max_value_size,
                target.epoch,
            )
            .await
        {
            Ok(true) => Some(true),
            Ok(false) => {
                crate::stats::bump(&self.inner.counters.stale_loads_dropped);
                tracing::debug!(target: "cachemacro", key = %skey, "cache: the key changed while loading; the loaded value is not cached");
                None
            }
            Err(crate::link::Fault::Unavailable) => Some(false),
            Err(fault) => {
                warn_throttled!(key = %skey, error = %fault, "cache: could not store the value in Redis; kept in this process only");
                Some(false)
            }
        }
    }
}
