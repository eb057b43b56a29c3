"""Local stack for cf-invalidator: moto in server mode, extended where it falls short of AWS.

One Python process runs moto as a library (werkzeug server on a free 127.0.0.1 port) and adds,
as small monkeypatch modules, what the project needs to run ``template.yaml`` end to end:

* ``sam``            -- emulate ``sam build/package`` and translate the SAM template
* ``deploy``         -- create the translated template in moto (CloudFormation), fill gaps
* ``lambda_runtime`` -- a Lambda Runtime API + process pool running the real release binaries
* ``lambda_patch``   -- route moto's Lambda Invoke to that pool (Invoke API, SFN tasks, targets)
* ``event_targets``  -- EventBridge -> Step Functions / Lambda targets, retry + DLQ, schedules
* ``s3_events``      -- S3 -> EventBridge events shaped like AWS, unique id, rising sequencer
* ``cloudfront``     -- invalidation model: InProgress -> Completed, CallerReference, limits
* ``faults``         -- switchable faults (CloudFront errors, Lambda crashes, crash-after-op,
                        S3 event duplicates and reordering)
* ``sfn_ext``        -- status-change events, RedriveExecution, RedriveCount, idempotent start
* ``control``        -- the ``/_local/*`` control API used by tests
"""
