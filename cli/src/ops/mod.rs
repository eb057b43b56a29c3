//! `cfinv doctor` and `cfinv canary`: a deployed stack, found through CloudFormation the same
//! way on AWS and on the local stack.

pub mod canary;
pub mod deployed;
pub mod doctor;
pub mod http;

use crate::args::TargetArgs;
use crate::config::{self, Target};
use crate::queries::AuditTable;
use crate::{Error, Result};
use deployed::DeployedStack;

/// A deployed stack and the AWS configuration to reach it and its resources.
pub struct Deployment {
    pub stack: DeployedStack,
    pub table: AuditTable,
}

impl Deployment {
    /// `--stack-name`, else the local stack file's stack; the audit table is the stack's
    /// `TableName` output unless `--table` names another.
    pub async fn connect(args: &TargetArgs, stack_name: Option<&str>) -> Result<Self> {
        let mut target = Target::load_for_stack(args)?;
        let name = stack_name
            .map(str::to_owned)
            .or_else(|| target.stack.as_ref().and_then(|s| s.stack_name.clone()))
            .ok_or_else(|| {
                Error::Usage(
                    "pass --stack-name (the name `sam deploy` deployed the stack as)".into(),
                )
            })?;
        let conf = config::sdk_config(&mut target).await?;
        let stack = DeployedStack::read(&aws_sdk_cloudformation::Client::new(&conf), &name).await?;
        if target.table.is_empty() {
            target.table = stack.table()?.to_owned();
        }
        Ok(Self {
            table: AuditTable::connect(target).await?,
            stack,
        })
    }

    pub fn conf(&self) -> &aws_config::SdkConfig {
        self.table.sdk_config()
    }

    pub fn region(&self) -> &str {
        self.table.target().region()
    }
}
