//! A deployed stack as CloudFormation describes it: its parameters, outputs and resources. The
//! same reads find the stack on AWS and on the local stack (moto's CloudFormation holds it).

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use cfinv_core::routes::MappingConfig;

use crate::{Error, Result, error_chain};

#[derive(Debug, Clone, Default)]
pub struct DeployedStack {
    pub name: String,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    /// Logical id -> (resource type, physical id).
    pub resources: BTreeMap<String, (String, String)>,
}

impl DeployedStack {
    /// DescribeStacks and ListStackResources (every page).
    pub async fn read(client: &Client, name: &str) -> Result<Self> {
        let fail = |e: &dyn std::error::Error| {
            Error::Usage(format!(
                "cannot read stack {name} from CloudFormation: {} (is --stack-name the name \
                 `sam deploy` used, in this region?)",
                error_chain(e)
            ))
        };
        let out = client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| fail(&e))?;
        let stack = out.stacks().first().ok_or_else(|| {
            Error::Usage(format!("CloudFormation has no stack {name} in this region"))
        })?;
        let mut deployed = Self {
            name: name.to_owned(),
            ..Self::default()
        };
        for p in stack.parameters() {
            if let (Some(k), Some(v)) = (p.parameter_key(), p.parameter_value()) {
                deployed.parameters.insert(k.to_owned(), v.to_owned());
            }
        }
        for o in stack.outputs() {
            if let (Some(k), Some(v)) = (o.output_key(), o.output_value()) {
                deployed.outputs.insert(k.to_owned(), v.to_owned());
            }
        }
        let mut pages = client
            .list_stack_resources()
            .stack_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for r in page.map_err(|e| fail(&e))?.stack_resource_summaries() {
                deployed.resources.insert(
                    r.logical_resource_id().unwrap_or_default().to_owned(),
                    (
                        r.resource_type().unwrap_or_default().to_owned(),
                        r.physical_resource_id().unwrap_or_default().to_owned(),
                    ),
                );
            }
        }
        Ok(deployed)
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// The physical ids of the stack's resources of `resource_type`, by logical id.
    pub fn of_type<'s>(
        &'s self,
        resource_type: &'s str,
    ) -> impl Iterator<Item = (&'s str, &'s str)> {
        self.resources
            .iter()
            .filter(move |(_, (t, p))| t == resource_type && !p.is_empty())
            .map(|(l, (_, p))| (l.as_str(), p.as_str()))
    }

    pub fn bucket(&self) -> Result<&str> {
        self.parameter("BucketName")
            .ok_or_else(|| self.not_ours("no BucketName parameter"))
    }

    pub fn table(&self) -> Result<&str> {
        self.outputs
            .get("TableName")
            .map(String::as_str)
            .ok_or_else(|| self.not_ours("no TableName output"))
    }

    /// The DistributionIds parameter.
    pub fn distribution_ids(&self) -> Vec<String> {
        self.parameter("DistributionIds")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// How collect-keys maps keys to paths in this stack: the template passes these
    /// parameters to it as the environment of the same names (template.yaml).
    pub fn mapping(&self) -> Result<MappingConfig> {
        let env = |name: &str| -> Option<String> {
            let parameter = match name {
                "ROUTES" => "Routes",
                "BUCKET_NAME" => "BucketName",
                "DISTRIBUTION_IDS" => "DistributionIds",
                "INDEX_DOCUMENT" => "IndexDocument",
                "KEY_ENCODING" => "KeyEncoding",
                "EXCLUDE" => "Exclude",
                _ => return None,
            };
            self.parameter(parameter).map(str::to_owned)
        };
        MappingConfig::from_lookup(env)
            .map_err(|e| self.not_ours(&format!("its parameters do not parse: {e}")))
    }

    fn not_ours(&self, what: &str) -> Error {
        Error::Usage(format!(
            "stack {} is not a cf-invalidator stack: {what}",
            self.name
        ))
    }
}
