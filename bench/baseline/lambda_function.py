# The classic one-file CloudFront invalidation Lambda, kept only as the benchmark's baseline
# (bench/README.md). It is deliberately left as such functions are usually written: S3
# notification trigger (Records[]), "/" + the event's (form-encoded) key, one CreateInvalidation
# per record, CallerReference = the current time. The only change: the distribution id comes
# from the environment instead of being pasted into the code, so the benchmark can point it at
# the local stack's second distribution.
import os
import time

import boto3

DISTRIBUTION_ID = os.environ.get("DISTRIBUTION_ID", "E2QWRUHEXAMPLE")

cloudfront = boto3.client("cloudfront")


def lambda_handler(event, context):
    for record in event["Records"]:
        key = record["s3"]["object"]["key"]
        cloudfront.create_invalidation(
            DistributionId=DISTRIBUTION_ID,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/" + key]},
                "CallerReference": str(time.time()),
            },
        )
    return {"statusCode": 200}
