//! GetExecution and ListExecutions as use cases: strongly consistent reads, confined to
//! the caller's tenant.

use super::{Caller, Executions, page_token};
use crate::db;
use crate::domain::listing::{Cursor, ListFilter, ListQuery, SortOrder};
use crate::domain::{Execution, ExecutionId, ExecutionRef, ExecutionStatus, View};
use crate::error::Error;

/// A page request as the transport hands it over, already validated field by field.
#[derive(Clone, Debug)]
pub struct ListRequest {
    /// What must match.
    pub filter: ListFilter,
    /// In which order.
    pub order: SortOrder,
    /// Rows per page (already defaulted and clamped).
    pub page_size: u64,
    /// Opaque token from the previous page; empty for the first.
    pub page_token: String,
    /// How much of each execution.
    pub view: View,
}

/// One page of executions.
#[derive(Clone, Debug)]
pub struct Page {
    /// The executions, in order.
    pub executions: Vec<Execution>,
    /// Token for the next page; empty on the last page.
    pub next_page_token: String,
}

impl Executions {
    /// Reads one execution; FULL reads see one snapshot of its row and action rows.
    pub async fn get(
        &self,
        caller: &Caller,
        target: ExecutionRef,
        view: View,
    ) -> Result<Execution, Error> {
        let (tenant, budget) = (caller.tenant.as_deref(), caller.budget()?);
        let found = if view == View::Basic && budget.is_none() {
            // One statement needs no transaction.
            db::load(self.db.conn(), target, tenant, view).await?
        } else {
            // FULL: the row and its actions in one snapshot. With a deadline, the
            // transaction carries its time budget to the database.
            let txn = self.db.begin_read(budget).await?;
            let found = db::load(&txn, target, tenant, view).await?;
            txn.commit().await?;
            found
        };
        found.ok_or_else(|| self.not_found(target))
    }

    /// The id and current revision of one execution (strongly consistent), for answers
    /// that may reuse the encoded form of that revision: read in a batch with the other
    /// calls' (see [`super::revisions`]), within the caller's deadline. On SQLite, a
    /// revision read since the last write began is not read again (see
    /// [`super::known`]).
    pub async fn current_revision(
        &self,
        caller: &Caller,
        target: ExecutionRef,
    ) -> Result<(ExecutionId, i64), Error> {
        let (tenant, budget) = (caller.tenant.as_deref(), caller.budget()?);
        if let Some(known) = self.known.get(&self.db, target, tenant) {
            return Ok(known);
        }
        let epoch = self.db.quiet_epoch();
        let batched = self.revisions.read(&self.db, target, tenant);
        let batched = match budget {
            None => batched.await,
            Some(budget) => tokio::time::timeout(budget, batched)
                .await
                .map_err(|_| Error::DeadlineExceeded)?,
        };
        let found = if let Ok(found) = batched {
            found
        } else if budget.is_none() {
            // The batch failed: alone, to get the error (or the revision) of this read.
            db::revision_of(self.db.conn(), target, tenant).await?
        } else {
            let txn = self.db.begin_read(caller.budget()?).await?;
            let found = db::revision_of(&txn, target, tenant).await?;
            txn.commit().await?;
            found
        };
        let found = found.ok_or_else(|| self.not_found(target))?;
        self.known.learn(&self.db, epoch, target, tenant, found);
        Ok(found)
    }

    /// How many executions match `filter`, by status (from one snapshot). A caller
    /// confined to a tenant counts that tenant's executions only, whatever its filter
    /// says.
    pub async fn count(
        &self,
        caller: &Caller,
        mut filter: ListFilter,
    ) -> Result<Vec<(ExecutionStatus, i64)>, Error> {
        if let Some(tenant) = &caller.tenant {
            filter.user_key = Some(tenant.clone());
        }
        let budget = caller.budget()?;
        if budget.is_none() {
            // One statement reads one snapshot.
            return db::count_by_status(self.db.conn(), &filter).await;
        }
        let txn = self.db.begin_read(budget).await?;
        let counts = db::count_by_status(&txn, &filter).await?;
        txn.commit().await?;
        Ok(counts)
    }

    /// Reads one page of executions (in one snapshot). A caller confined to a tenant gets
    /// that tenant's executions only, whatever its filter says.
    pub async fn list(&self, caller: &Caller, mut request: ListRequest) -> Result<Page, Error> {
        if let Some(tenant) = &caller.tenant {
            request.filter.user_key = Some(tenant.clone());
        }
        let fingerprint = page_token::fingerprint(&request.filter, request.order);
        let after = page_token::decode(&request.page_token, fingerprint)?;
        let query = ListQuery {
            filter: request.filter,
            order: request.order,
            after,
            // One more than the page: its presence says whether a next page exists.
            limit: request.page_size + 1,
            view: request.view,
        };
        let budget = caller.budget()?;
        // Before the page's snapshot: every row the page may read has committed.
        let horizon = self.horizon.read(&self.db, caller);
        let horizon = match budget {
            None => horizon.await?,
            Some(budget) => tokio::time::timeout(budget, horizon)
                .await
                .map_err(|_| Error::DeadlineExceeded)??,
        };
        let mut executions = if query.view == View::Basic && budget.is_none() {
            db::list(self.db.conn(), &query, horizon).await?
        } else {
            // As for `get`: one snapshot, and the deadline's budget in the database.
            let txn = self.db.begin_read(caller.budget()?).await?;
            let page = db::list(&txn, &query, horizon).await?;
            txn.commit().await?;
            page
        };
        let more = executions.len() as u64 > request.page_size;
        executions.truncate(request.page_size as usize);
        let next_page_token = match executions.last() {
            Some(last) if more => page_token::encode(Cursor::of(&last.header), fingerprint),
            _ => String::new(),
        };
        Ok(Page {
            executions,
            next_page_token,
        })
    }
}
