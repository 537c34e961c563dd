"""AWS: live inventory and sessions across accounts and regions (org trail in S3, CloudWatch
Logs or LookupEvents; Session Manager, Instance Connect, console sign-in; VPC flow logs), the
CloudTrail and flow-log file sources, and the instance-type catalog.

``client.py`` is the only module that imports boto3/botocore; parsing modules are pure.
"""
