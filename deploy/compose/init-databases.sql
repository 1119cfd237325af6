-- One database per service, as deploy/local/postgres.sh creates them.
CREATE DATABASE wastetrail_collection;
CREATE DATABASE wastetrail_transfer;
CREATE DATABASE wastetrail_treatment;
CREATE DATABASE wastetrail_billing;
