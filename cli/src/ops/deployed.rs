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

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::operation::list_stack_resources::ListStackResourcesOutput;
    use aws_sdk_cloudformation::types::{
        Output, Parameter, Stack, StackResourceSummary, StackStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn resource(logical: &str, kind: &str, physical: Option<&str>) -> StackResourceSummary {
        StackResourceSummary::builder()
            .logical_resource_id(logical)
            .resource_type(kind)
            .set_physical_resource_id(physical.map(Into::into))
            .resource_status("CREATE_COMPLETE".into())
            .last_updated_timestamp(aws_smithy_types::DateTime::from_secs(0))
            .build()
    }

    #[tokio::test]
    async fn reads_parameters_outputs_and_every_page_of_resources() {
        let describe = mock!(Client::describe_stacks)
            .match_requests(|r| r.stack_name() == Some("site"))
            .then_output(|| {
                let stack = Stack::builder()
                    .stack_name("site")
                    .creation_time(aws_smithy_types::DateTime::from_secs(0))
                    .stack_status(StackStatus::CreateComplete)
                    .parameters(
                        Parameter::builder()
                            .parameter_key("BucketName")
                            .parameter_value("my-site")
                            .build(),
                    )
                    .parameters(
                        Parameter::builder()
                            .parameter_key("DistributionIds")
                            .parameter_value("E1, E2,")
                            .build(),
                    )
                    .outputs(
                        Output::builder()
                            .output_key("TableName")
                            .output_value("audit")
                            .build(),
                    )
                    .build();
                DescribeStacksOutput::builder().stacks(stack).build()
            });
        let first = mock!(Client::list_stack_resources)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                ListStackResourcesOutput::builder()
                    .stack_resource_summaries(resource(
                        "Dlq",
                        "AWS::SQS::Queue",
                        Some("https://q/dlq"),
                    ))
                    .next_token("p2")
                    .build()
            });
        let second = mock!(Client::list_stack_resources)
            .match_requests(|r| r.next_token() == Some("p2"))
            .then_output(|| {
                ListStackResourcesOutput::builder()
                    .stack_resource_summaries(resource(
                        "Rule",
                        "AWS::Events::Rule",
                        Some("site-rule"),
                    ))
                    // Being created: no physical id yet.
                    .stack_resource_summaries(resource("Other", "AWS::Events::Rule", None))
                    .build()
            });
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::Sequential,
            [&describe, &first, &second]
        );
        let stack = DeployedStack::read(&client, "site").await.unwrap();
        assert_eq!(stack.bucket().unwrap(), "my-site");
        assert_eq!(stack.table().unwrap(), "audit");
        assert_eq!(stack.distribution_ids(), ["E1", "E2"]);
        assert_eq!(
            stack.of_type("AWS::Events::Rule").collect::<Vec<_>>(),
            [("Rule", "site-rule")]
        );
        assert_eq!(
            stack.of_type("AWS::SQS::Queue").collect::<Vec<_>>(),
            [("Dlq", "https://q/dlq")]
        );
        assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_missing_stack_says_which_name_was_asked_for() {
        // CloudFormation's answer for a stack that does not exist (DescribeStacks API reference:
        // "If the stack doesn't exist, a ValidationError is returned").
        let rule = mock!(Client::describe_stacks).then_http_response(|| {
            Response::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(
                    r#"<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id nope does not exist</Message></Error><RequestId>r</RequestId></ErrorResponse>"#,
                ),
            )
        });
        let client = mock_client!(aws_sdk_cloudformation, [&rule]);
        let err = DeployedStack::read(&client, "nope").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot read stack nope from CloudFormation: ")
                && text.contains("Stack with id nope does not exist")
                && text.contains("--stack-name"),
            "{text}"
        );
    }

    #[test]
    fn a_stack_without_our_outputs_is_not_ours() {
        let stack = DeployedStack {
            name: "other".into(),
            ..DeployedStack::default()
        };
        assert_eq!(
            stack.table().unwrap_err().to_string(),
            "stack other is not a cf-invalidator stack: no TableName output"
        );
    }
}
