"""AWS: CloudTrail files, live EC2 inventory + CloudTrail LookupEvents, instance-type catalog.

``client.py`` is the only module that imports boto3/botocore; ``normalize.py`` is pure.
"""
